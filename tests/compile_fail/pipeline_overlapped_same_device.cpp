// Overlapped needs the draft and the target on different placements.
#include <edgespec/edgespec.hpp>
using namespace edgespec;
using P = Pipeline<Draft<OnCPU>, Target<OnCPU>, DraftLen<4>, Overlapped>;
int main() { return sizeof(P) > 0 ? 0 : 1; }
