// GPT-2 byte-level BPE, as llama.cpp's llm_tokenizer_bpe does it for pre-tokenizer "gpt-2".
//
//   words  = text split by  's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//   each word's bytes -> GPT-2 alphabet code points ("Ġ" for ' ', ...), symbols = those code points
//   repeat: merge the adjacent pair with the lowest merge rank (ties: leftmost), heap of candidates
//   each final symbol emits its token (else one token per byte of its text, where such tokens exist)
#pragma once

#ifndef EDGESPEC_TOKENIZER_DETAIL_OK
#error "edgespec/tokenizer/detail/ is internal: include edgespec/tokenizer/tokenizer.hpp"
#endif

#include <cstdint>
#include <queue>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "edgespec/tokenizer/detail/spm.hpp"  // TokenIndex, Symbol
#include "edgespec/tokenizer/detail/unicode.hpp"
#include "edgespec/tokenizer/vocab.hpp"

namespace edgespec::detail {

// Byte ranges [first, second) of the GPT-2 pre-tokenizer's words. Matches llama.cpp's hand-written
// unicode_regex_split_custom_gpt2; \s is Unicode White_Space. A malformed UTF-8 byte counts as U+FFFD
// (a symbol) but keeps its original byte.
inline std::vector<std::pair<std::size_t, std::size_t>> gpt2_split(std::string_view text) {
  struct Cpt {
    std::uint32_t cp;
    std::size_t off;
    bool letter, number, space;
  };
  std::vector<Cpt> c;
  c.reserve(text.size());
  for (std::size_t off = 0; off < text.size();) {
    const Utf8Cpt u = decode_utf8(text, off);
    const CptClass k = cpt_class(u.cp);
    c.push_back({u.cp, off, k == CptClass::Letter, k == CptClass::Number, is_whitespace(u.cp)});
    off += u.len;
  }
  const std::size_t n = c.size();
  const auto letter = [&](std::size_t i) { return i < n && c[i].letter; };
  const auto number = [&](std::size_t i) { return i < n && c[i].number; };
  const auto space = [&](std::size_t i) { return i < n && c[i].space; };
  const auto other = [&](std::size_t i) { return i < n && !c[i].letter && !c[i].number && !c[i].space; };
  const auto byte_at = [&](std::size_t i) { return i < n ? c[i].off : text.size(); };

  std::vector<std::pair<std::size_t, std::size_t>> words;
  std::size_t pos = 0;
  const auto emit = [&](std::size_t end) {  // the word is [pos, end) in code points
    words.emplace_back(byte_at(pos), byte_at(end));
    pos = end;
  };
  while (pos < n) {
    const std::uint32_t cp = c[pos].cp;
    if (cp == '\'' && pos + 1 < n) {  // 's 't 'm 'd 're 've 'll (lower case only)
      const std::uint32_t a = c[pos + 1].cp;
      if (a == 's' || a == 't' || a == 'm' || a == 'd') {
        emit(pos + 2);
        continue;
      }
      if (pos + 2 < n) {
        const std::uint32_t b = c[pos + 2].cp;
        if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) {
          emit(pos + 3);
          continue;
        }
      }
    }
    const std::size_t q = cp == ' ' ? pos + 1 : pos;  // optional leading space of the next three rules
    if (letter(q)) {
      std::size_t e = q;
      while (letter(e)) ++e;
      emit(e);
      continue;
    }
    if (number(q)) {
      std::size_t e = q;
      while (number(e)) ++e;
      emit(e);
      continue;
    }
    if (other(q)) {
      std::size_t e = q;
      while (other(e)) ++e;
      emit(e);
      continue;
    }
    std::size_t ws = 0;
    while (space(pos + ws)) ++ws;
    if (ws > 1 && pos + ws < n) {  // \s+(?!\S): leave the last space to the word that follows
      emit(pos + ws - 1);
      continue;
    }
    emit(pos + (ws > 0 ? ws : 1));
  }
  return words;
}

class BpeEncoder {
 public:
  BpeEncoder(const Vocab& v, const TokenIndex& index) : index_(&index) {
    ranks_.reserve(v.merges.size());
    for (std::size_t i = 0; i < v.merges.size(); ++i) {
      const std::string& m = v.merges[i];
      const std::size_t sp = m.find(' ', 1);
      if (sp == std::string::npos) continue;
      // Key "left right": unambiguous because byte-level symbols never contain a raw ' ' (it is 'Ġ').
      ranks_.emplace(m, static_cast<int>(i));  // the first occurrence keeps its rank
    }
  }

  // Appends the tokens of `text` to `out`.
  void encode(std::string_view text, std::vector<std::int32_t>& out) const {
    const ByteAlphabet& alpha = byte_alphabet();
    std::string word;
    std::string key;
    std::vector<Symbol> sym;
    struct Bigram {
      int rank;
      int left, right;
      std::size_t size;
    };
    const auto lower = [](const Bigram& a, const Bigram& b) {
      return a.rank > b.rank || (a.rank == b.rank && a.left > b.left);
    };
    for (const auto& [b0, b1] : gpt2_split(text)) {
      word.clear();
      for (std::size_t i = b0; i < b1; ++i) word += alpha.to_utf8[static_cast<unsigned char>(text[i])];
      sym.clear();
      for (std::size_t off = 0; off < word.size();) {
        const std::size_t n = std::min(utf8_len(static_cast<unsigned char>(word[off])), word.size() - off);
        const int i = static_cast<int>(sym.size());
        sym.push_back({i - 1, off + n == word.size() ? -1 : i + 1, off, n});
        off += n;
      }
      std::priority_queue<Bigram, std::vector<Bigram>, decltype(lower)> queue(lower);
      const auto try_add = [&](int l, int r) {
        if (l < 0 || r < 0) return;
        const Symbol& a = sym[static_cast<std::size_t>(l)];
        const Symbol& b = sym[static_cast<std::size_t>(r)];
        key.assign(word, a.start, a.n);
        key += ' ';
        key.append(word, b.start, b.n);
        const auto it = ranks_.find(key);
        if (it != ranks_.end()) queue.push({it->second, l, r, a.n + b.n});
      };
      for (int i = 1; i < static_cast<int>(sym.size()); ++i) try_add(i - 1, i);
      while (!queue.empty()) {
        const Bigram bg = queue.top();
        queue.pop();
        Symbol& l = sym[static_cast<std::size_t>(bg.left)];
        Symbol& r = sym[static_cast<std::size_t>(bg.right)];
        if (l.n == 0 || r.n == 0 || l.n + r.n != bg.size) continue;  // stale candidate
        l.n += r.n;
        r.n = 0;
        l.next = r.next;
        if (r.next >= 0) sym[static_cast<std::size_t>(r.next)].prev = bg.left;
        try_add(l.prev, bg.left);
        try_add(bg.left, l.next);
      }
      for (int i = sym.empty() ? -1 : 0; i != -1; i = sym[static_cast<std::size_t>(i)].next) {
        const Symbol& s = sym[static_cast<std::size_t>(i)];
        const std::string_view piece = std::string_view(word).substr(s.start, s.n);
        if (const std::int32_t id = find_token(*index_, piece); id >= 0) {
          out.push_back(id);
          continue;
        }
        for (std::size_t j = 0; j < piece.size(); ++j)  // llama.cpp: single-byte tokens where they exist
          if (const std::int32_t id = find_token(*index_, piece.substr(j, 1)); id >= 0) out.push_back(id);
      }
    }
  }

 private:
  const TokenIndex* index_;
  std::unordered_map<std::string, int> ranks_;
};

}  // namespace edgespec::detail
