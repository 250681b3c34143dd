#include "shapes.h"

long square(long n)
{
    return n * n;
}
