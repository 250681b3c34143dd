#include "helper.h"
int main(void) { return HELPER; }
