#define OS_LINUX 1
