// Uses the installed headers through the umbrella header only.
#include <edgespec/edgespec.hpp>

#include <cstdio>

int main() {
  static_assert(edgespec::block_bytes(edgespec::DType::Q8_0) == 34);
  const float one = edgespec::fp16_to_fp32(0x3c00);  // f16 1.0
  if (one != 1.0f || edgespec::parse_dtype("q8_0") != edgespec::DType::Q8_0) {
    std::puts("edgespec consumer: wrong result");
    return 1;
  }
  std::printf("edgespec consumer OK (%.1f)\n", static_cast<double>(one));
  return 0;
}
