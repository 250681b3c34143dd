#define HELPER 0
