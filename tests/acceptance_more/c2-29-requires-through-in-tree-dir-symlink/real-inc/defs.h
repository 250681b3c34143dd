#define DEFS 1
