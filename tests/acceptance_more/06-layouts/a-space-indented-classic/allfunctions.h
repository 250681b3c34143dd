int square(int);
int cube(int);
