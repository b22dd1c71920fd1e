// Control: a valid use of the public header must get through the compile-check driver.
#include <edgespec/edgespec.hpp>

#include <Eigen/Core>

static_assert(edgespec::block_bytes(edgespec::DType::Q4_0) == 18);

int main() {
  Eigen::Vector2f v(1.0f, 2.0f);
  return static_cast<int>(v.sum()) + static_cast<int>(edgespec::fp16_to_fp32(0x3c00)) - 4;
}
