// Q8_0 weights need ffn_dim to be a multiple of 32 (172 is not).
#include <edgespec/model/arch.hpp>
struct Bad : edgespec::Stories260K {
  static constexpr edgespec::WeightFormat weight = edgespec::WeightFormat::Q8_0;
};
static_assert(edgespec::check_arch<Bad>::value);
