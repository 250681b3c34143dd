#define BASE 100
