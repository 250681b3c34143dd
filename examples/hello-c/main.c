#include <stdio.h>
#include <stdlib.h>

#include "shapes.h"

int main(int argc, char **argv)
{
    long n = argc > 1 ? strtol(argv[1], NULL, 10) : 3;

    printf("square(%ld) = %ld\n", n, square(n));
    printf("cube(%ld) = %ld\n", n, cube(n));
    return 0;
}
