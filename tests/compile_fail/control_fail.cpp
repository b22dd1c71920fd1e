// Control: the compile-check driver must detect this failure and match its sentence.
#include <edgespec/edgespec.hpp>

static_assert(sizeof(int) == 3, "control: this must fail");

int main() { return 0; }
