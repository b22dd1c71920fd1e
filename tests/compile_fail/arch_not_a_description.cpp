// A type without the architecture members.
#include <edgespec/model/arch.hpp>
struct NotAModel {
  static constexpr int dim = 64;
};
static_assert(edgespec::check_arch<NotAModel>::value);
