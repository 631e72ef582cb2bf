/*
 * C23 spellings of strtol/strtoul (glibc 2.38), for Jazzer.js's prebuilt addon on glibc 2.36.
 * C23 adds the 0b prefix for base 0/2; the addon parses libFuzzer flags (decimal), where both agree.
 */
#include <stdlib.h>

long __isoc23_strtol(const char *s, char **end, int base) { return strtol(s, end, base); }
unsigned long __isoc23_strtoul(const char *s, char **end, int base) { return strtoul(s, end, base); }
