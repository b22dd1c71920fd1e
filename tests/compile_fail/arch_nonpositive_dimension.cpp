// Zero layers.
#include <edgespec/model/arch.hpp>
struct Bad : edgespec::Llama<64, 0, 8, 4, 128, 512, 64> {};
static_assert(edgespec::check_arch<Bad>::value);
