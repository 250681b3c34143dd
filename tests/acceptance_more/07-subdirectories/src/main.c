#include <stdio.h>
#include "defs.h"
int main(void){printf("subdirs=%d\n", ANSWER);return 0;}
