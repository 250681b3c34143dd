#include <stdio.h>
#include "program.h"
#include "allfunctions.h"
int main(void){printf("classic=%d\n", square(3)+cube(2)+BASE);return 0;}
