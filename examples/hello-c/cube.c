#include "shapes.h"

long cube(long n)
{
    return square(n) * n;
}
