// SentencePiece-style BPE by scores, as llama.cpp's llm_tokenizer_spm does it.
//
//   symbols  = UTF-8 characters of the (already '▁'-escaped) text
//   repeat:    merge the adjacent pair whose concatenation is a vocabulary token with the highest score
//              (ties: the leftmost pair); candidates live in a max-heap, stale ones are skipped when popped
//   finally:   a symbol that is a token emits it; any other symbol emits one <0xXX> token per byte
//
// O(n log n) in the number of characters: each merge pushes at most two new candidates.
#pragma once

#ifndef EDGESPEC_TOKENIZER_DETAIL_OK
#error "edgespec/tokenizer/detail/ is internal: include edgespec/tokenizer/tokenizer.hpp"
#endif

#include <algorithm>
#include <array>
#include <cstdint>
#include <queue>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "edgespec/core/error.hpp"
#include "edgespec/tokenizer/detail/unicode.hpp"
#include "edgespec/tokenizer/vocab.hpp"

namespace edgespec::detail {

// Token text -> id over a Vocab that outlives it. As in llama.cpp, a repeated text maps to its last id and empty
// texts are not reachable by encoding.
using TokenIndex = std::unordered_map<std::string_view, std::int32_t>;

inline TokenIndex make_token_index(const Vocab& v) {
  TokenIndex index;
  index.reserve(v.tokens.size());
  for (std::size_t i = 0; i < v.tokens.size(); ++i)
    if (!v.tokens[i].empty()) index.insert_or_assign(std::string_view(v.tokens[i]), static_cast<std::int32_t>(i));
  return index;
}

inline std::int32_t find_token(const TokenIndex& index, std::string_view text) {
  const auto it = index.find(text);
  return it == index.end() ? -1 : it->second;
}

// Doubly linked run of text spans; merged-away symbols have n == 0.
struct Symbol {
  int prev, next;
  std::size_t start, n;
};

class SpmEncoder {
 public:
  SpmEncoder(const Vocab& v, const TokenIndex& index) : vocab_(&v), index_(&index) {
    static constexpr char hex[] = "0123456789ABCDEF";
    for (int b = 0; b < 256; ++b) {
      const char piece[] = {'<', '0', 'x', hex[b >> 4], hex[b & 15], '>'};
      std::int32_t id = find_token(index, std::string_view(piece, sizeof piece));
      const char raw = static_cast<char>(b);
      if (id < 0) id = find_token(index, std::string_view(&raw, 1));
      if (id < 0) id = v.unk;  // llama.cpp would abort; the unknown token is the closest honest answer
      byte_ids_[static_cast<std::size_t>(b)] = id;
    }
  }

  // Appends the tokens of `text` (spaces already escaped to U+2581) to `out`.
  void encode(std::string_view text, std::vector<std::int32_t>& out) const {
    if (text.empty()) return;
    std::vector<Symbol> sym;
    sym.reserve(text.size());
    for (std::size_t off = 0; off < text.size();) {
      const std::size_t n = std::min(utf8_len(static_cast<unsigned char>(text[off])), text.size() - off);
      const int i = static_cast<int>(sym.size());
      sym.push_back({i - 1, off + n == text.size() ? -1 : i + 1, off, n});
      off += n;
    }

    struct Bigram {
      float score;
      int left, right;
      std::size_t size;
    };
    const auto lower = [](const Bigram& a, const Bigram& b) {
      return a.score < b.score || (a.score == b.score && a.left > b.left);
    };
    std::priority_queue<Bigram, std::vector<Bigram>, decltype(lower)> queue(lower);
    const auto try_add = [&](int l, int r) {
      if (l < 0 || r < 0) return;
      const std::string_view s = text.substr(sym[l].start, sym[l].n + sym[r].n);
      const std::int32_t id = find_token(*index_, s);
      if (id >= 0) queue.push({vocab_->scores[static_cast<std::size_t>(id)], l, r, s.size()});
    };
    for (int i = 1; i < static_cast<int>(sym.size()); ++i) try_add(i - 1, i);

    while (!queue.empty()) {
      const Bigram b = queue.top();
      queue.pop();
      Symbol& l = sym[static_cast<std::size_t>(b.left)];
      Symbol& r = sym[static_cast<std::size_t>(b.right)];
      if (l.n == 0 || r.n == 0 || l.n + r.n != b.size) continue;  // one side changed since it was queued
      l.n += r.n;
      r.n = 0;
      l.next = r.next;
      if (r.next >= 0) sym[static_cast<std::size_t>(r.next)].prev = b.left;
      try_add(l.prev, b.left);
      try_add(b.left, l.next);
    }

    for (int i = 0; i != -1; i = sym[static_cast<std::size_t>(i)].next) {
      const Symbol& s = sym[static_cast<std::size_t>(i)];
      const std::string_view piece = text.substr(s.start, s.n);
      if (const std::int32_t id = find_token(*index_, piece); id >= 0) {
        out.push_back(id);
        continue;
      }
      for (const char c : piece) {  // byte fallback
        const std::int32_t id = byte_ids_[static_cast<unsigned char>(c)];
        ES_CHECK(id >= 0, "tokenizer: byte 0x", std::hex, static_cast<int>(static_cast<unsigned char>(c)),
                 " has no <0x..> token and the vocabulary has no unknown token");
        out.push_back(id);
      }
    }
  }

 private:
  const Vocab* vocab_;
  const TokenIndex* index_;
  std::array<std::int32_t, 256> byte_ids_{};
};

}  // namespace edgespec::detail
