#ifndef SHAPES_H
#define SHAPES_H

long square(long n);
long cube(long n);

#endif
