// n_kv_heads = 3 does not divide n_heads = 8.
#include <edgespec/model/arch.hpp>
struct Bad : edgespec::Llama<64, 2, 8, 3, 128, 512, 64> {};
static_assert(edgespec::check_arch<Bad>::value);
