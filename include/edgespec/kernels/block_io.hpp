// Whole quantization blocks read from and written to rows at any address (memory-mapped tensors, unaligned
// output buffers): through memcpy, so no misaligned access reaches the struct's fields.
#pragma once

#include <cstdint>
#include <cstring>

namespace edgespec::detail {

// Block b of a row starting at src.
template <class Block>
[[nodiscard]] inline Block load_block(const void* src, std::int64_t b) noexcept {
  Block blk;
  std::memcpy(&blk, static_cast<const unsigned char*>(src) + b * static_cast<std::int64_t>(sizeof(Block)),
              sizeof blk);
  return blk;
}

// blk as block b of a row starting at dst.
template <class Block>
inline void store_block(void* dst, std::int64_t b, const Block& blk) noexcept {
  std::memcpy(static_cast<unsigned char*>(dst) + b * static_cast<std::int64_t>(sizeof(Block)), &blk, sizeof blk);
}

}  // namespace edgespec::detail
