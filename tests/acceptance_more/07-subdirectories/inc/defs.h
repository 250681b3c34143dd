#include "deep/more.h"
#define ANSWER (SIX*SEVEN)
