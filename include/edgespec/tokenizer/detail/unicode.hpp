// UTF-8 decoding, code point classes for the pre-tokenizer regexes, and the GPT-2 byte <-> unicode alphabet.
#pragma once

#ifndef EDGESPEC_TOKENIZER_DETAIL_OK
#error "edgespec/tokenizer/detail/ is internal: include edgespec/tokenizer/tokenizer.hpp"
#endif

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "edgespec/tokenizer/detail/unicode_tables.hpp"

namespace edgespec::detail {

// Length of the UTF-8 sequence a lead byte announces (1 for continuation bytes), as llama.cpp splits symbols.
[[nodiscard]] inline std::size_t utf8_len(unsigned char lead) noexcept {
  constexpr std::uint8_t lookup[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
  return lookup[lead >> 4];
}

inline void append_utf8(std::string& out, std::uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

inline constexpr std::uint32_t kReplacementChar = 0xFFFD;

// One code point at s[pos]: its value and byte length. A malformed sequence yields U+FFFD with length 1, as
// llama.cpp's unicode_cpts_from_utf8 does. Like it, overlong forms and surrogates decode to their value; unlike it,
// a 4-byte form above U+10FFFF is malformed here too (llama.cpp would throw when it encodes that value again).
struct Utf8Cpt {
  std::uint32_t cp;
  std::size_t len;
};
[[nodiscard]] inline Utf8Cpt decode_utf8(std::string_view s, std::size_t pos) noexcept {
  const auto b = [&](std::size_t i) { return static_cast<unsigned char>(s[pos + i]); };
  const auto cont = [&](std::size_t i) { return pos + i < s.size() && (b(i) & 0xC0) == 0x80; };
  const unsigned char c = b(0);
  if (c < 0x80) return {c, 1};
  if ((c & 0xE0) == 0xC0 && cont(1)) return {(c & 0x1Fu) << 6 | (b(1) & 0x3Fu), 2};
  if ((c & 0xF0) == 0xE0 && cont(1) && cont(2))
    return {(c & 0x0Fu) << 12 | (b(1) & 0x3Fu) << 6 | (b(2) & 0x3Fu), 3};
  if ((c & 0xF8) == 0xF0 && cont(1) && cont(2) && cont(3)) {
    const std::uint32_t cp = (c & 0x07u) << 18 | (b(1) & 0x3Fu) << 12 | (b(2) & 0x3Fu) << 6 | (b(3) & 0x3Fu);
    if (cp <= 0x10FFFF) return {cp, 4};
  }
  return {kReplacementChar, 1};
}

// General category class (\p{L}, \p{N}, \p{P}, \p{M}, \p{S}; Other = C*, Z* and unassigned), Unicode 15.1 as
// llama.cpp's tables; values as in scripts/gen_unicode_tables.py.
enum class CptClass : std::uint8_t { Other = 0, Letter = 1, Number = 2, Punctuation = 3, Mark = 4, Symbol = 5 };

[[nodiscard]] inline CptClass cpt_class(std::uint32_t cp) noexcept {
  using unicode_tables::kClassRanges;
  if (cp < 0x80) {
    if ((cp | 0x20) >= 'a' && (cp | 0x20) <= 'z') return CptClass::Letter;
    if (cp >= '0' && cp <= '9') return CptClass::Number;
    if (cp < 0x21 || cp == 0x7F) return CptClass::Other;
    // ASCII punctuation and symbols: $ + < = > ^ ` | ~ are symbols, the rest of '!'..'~' punctuation.
    constexpr std::string_view symbols = "$+<=>^`|~";
    return symbols.find(static_cast<char>(cp)) != std::string_view::npos ? CptClass::Symbol : CptClass::Punctuation;
  }
  if (cp > 0x10FFFF) return CptClass::Other;
  const std::uint32_t key = (cp << 3) | 7u;  // the last entry whose start is <= cp
  const auto* it = std::upper_bound(std::begin(kClassRanges), std::end(kClassRanges), key);
  return static_cast<CptClass>(*(it - 1) & 7u);
}

[[nodiscard]] inline bool is_whitespace(std::uint32_t cp) noexcept {
  using unicode_tables::kWhiteSpace;
  if (cp < 0x80) return cp == ' ' || (cp >= 0x09 && cp <= 0x0D);
  return std::binary_search(std::begin(kWhiteSpace), std::end(kWhiteSpace), cp);
}

// GPT-2 byte-level alphabet: printable bytes '!'..'~', 0xA1..0xAC, 0xAE..0xFF map to themselves; the other 68
// bytes map, in order, to U+0100, U+0101, ... ( ' ' -> U+0120 'Ġ', '\n' -> U+010A 'Ċ').
struct ByteAlphabet {
  std::array<std::string, 256> to_utf8;          // byte -> UTF-8 of its code point
  std::array<std::int16_t, 0x144> from_cpt{};    // code point -> byte, -1 if not in the alphabet

  ByteAlphabet() {
    from_cpt.fill(-1);
    int extra = 0;
    for (int b = 0; b < 256; ++b) {
      const bool self = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      const std::uint32_t cp = self ? static_cast<std::uint32_t>(b) : 0x100u + static_cast<std::uint32_t>(extra++);
      append_utf8(to_utf8[static_cast<std::size_t>(b)], cp);
      from_cpt[cp] = static_cast<std::int16_t>(b);
    }
  }
  [[nodiscard]] int byte_of(std::uint32_t cp) const noexcept { return cp < from_cpt.size() ? from_cpt[cp] : -1; }
};

[[nodiscard]] inline const ByteAlphabet& byte_alphabet() {
  static const ByteAlphabet a;
  return a;
}

}  // namespace edgespec::detail
