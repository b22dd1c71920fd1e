// head_dim = 63 / 7 = 9 is odd: rotary embeddings rotate pairs.
#include <edgespec/model/arch.hpp>
struct Bad : edgespec::Llama<63, 2, 7, 7, 128, 512, 64> {};
static_assert(edgespec::check_arch<Bad>::value);
