#define SIX 6
#define SEVEN 7
