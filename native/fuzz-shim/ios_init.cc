// GCC 13 moved iostream start-up into std::ios_base_library_init() (GLIBCXX_3.4.32); GCC 12's
// libstdc++ does it from ios_base::Init objects instead. Construct one on the first call.
#include <ios>

namespace std {
void ios_base_library_init() { static ios_base::Init init; }
}
