// GPT-2 byte-level BPE, as llama.cpp's llm_tokenizer_bpe does it for pre-tokenizers gpt-2, llama3 and qwen2.
//
//   words  = text split by the pre-tokenizer's regex (gpt2_split, llama3_split below)
//   (llama3 only) a word that is a token as a whole is emitted as that token (ignore_merges)
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

using WordRanges = std::vector<std::pair<std::size_t, std::size_t>>;  // byte ranges [first, second)

// The text as code points with the classes the pre-tokenizer regexes test, and the words cut so far. Shared by
// the splitters below, which are hand-written like llama.cpp's unicode_regex_split_custom_{gpt2,llama3}: each
// loop iteration matches the regex's alternatives in order at `pos` and emits the first that matches.
// \s is Unicode White_Space; \p{L} / \p{N} come from unicode_tables.hpp. A malformed UTF-8 byte counts as U+FFFD
// (a symbol) but keeps its original byte.
class PreSplit {
 public:
  explicit PreSplit(std::string_view text) : text_(text) {
    c_.reserve(text.size());
    for (std::size_t off = 0; off < text.size();) {
      const Utf8Cpt u = decode_utf8(text, off);
      const CptClass k = cpt_class(u.cp);
      c_.push_back({u.cp, off, k == CptClass::Letter, k == CptClass::Number, is_whitespace(u.cp)});
      off += u.len;
    }
  }

  std::size_t pos = 0;  // code points before pos are emitted

  [[nodiscard]] bool done() const noexcept { return pos >= c_.size(); }
  [[nodiscard]] std::size_t size() const noexcept { return c_.size(); }
  [[nodiscard]] std::uint32_t cp(std::size_t i) const noexcept { return i < c_.size() ? c_[i].cp : 0xFFFFFFFFu; }
  [[nodiscard]] bool letter(std::size_t i) const noexcept { return i < c_.size() && c_[i].letter; }
  [[nodiscard]] bool number(std::size_t i) const noexcept { return i < c_.size() && c_[i].number; }
  [[nodiscard]] bool space(std::size_t i) const noexcept { return i < c_.size() && c_[i].space; }
  [[nodiscard]] bool other(std::size_t i) const noexcept {  // [^\s\p{L}\p{N}]
    return i < c_.size() && !c_[i].letter && !c_[i].number && !c_[i].space;
  }
  [[nodiscard]] bool cr_or_lf(std::size_t i) const noexcept { return cp(i) == '\r' || cp(i) == '\n'; }

  // The word is [pos, end) in code points.
  void emit(std::size_t end) {
    words_.emplace_back(byte_at(pos), byte_at(end));
    pos = end;
  }
  // First index >= i where pred fails.
  template <class Pred>
  [[nodiscard]] std::size_t run(std::size_t i, Pred pred) const {
    while (pred(i)) ++i;
    return i;
  }

  // Length of the contraction 's 't 'm 'd 're 've 'll at pos (0: none); any_case: (?i:...), ASCII only.
  [[nodiscard]] std::size_t contraction(bool any_case) const noexcept {
    if (cp(pos) != '\'') return 0;
    const auto low = [&](std::size_t i) { return any_case && cp(i) >= 'A' && cp(i) <= 'Z' ? cp(i) + 32 : cp(i); };
    const std::uint32_t a = low(pos + 1), b = low(pos + 2);
    if (a == 's' || a == 't' || a == 'm' || a == 'd') return 2;
    if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return 3;
    return 0;
  }

  // The regexes' last alternatives \s+(?!\S)|\s+ , and one code point when nothing matched.
  void emit_spaces_or_one() {
    const std::size_t e = run(pos, [&](std::size_t i) { return space(i); });
    if (e - pos > 1 && e < c_.size()) emit(e - 1);  // leave the last space to the word that follows
    else emit(e > pos ? e : pos + 1);
  }

  [[nodiscard]] WordRanges take() && { return std::move(words_); }

 private:
  struct Cpt {
    std::uint32_t cp;
    std::size_t off;
    bool letter, number, space;
  };
  [[nodiscard]] std::size_t byte_at(std::size_t i) const noexcept { return i < c_.size() ? c_[i].off : text_.size(); }

  std::string_view text_;
  std::vector<Cpt> c_;
  WordRanges words_;
};

// GPT-2 (llama.cpp LLAMA_VOCAB_PRE_TYPE_GPT2):
//   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
inline WordRanges gpt2_split(std::string_view text) {
  PreSplit s(text);
  while (!s.done()) {
    if (const std::size_t k = s.contraction(/*any_case=*/false)) {
      s.emit(s.pos + k);
      continue;
    }
    const std::size_t q = s.cp(s.pos) == ' ' ? s.pos + 1 : s.pos;  // optional leading space of the next three
    if (s.letter(q)) s.emit(s.run(q, [&](std::size_t i) { return s.letter(i); }));
    else if (s.number(q)) s.emit(s.run(q, [&](std::size_t i) { return s.number(i); }));
    else if (s.other(q)) s.emit(s.run(q, [&](std::size_t i) { return s.other(i); }));
    else s.emit_spaces_or_one();
  }
  return std::move(s).take();
}

// Llama 3 (LLAMA_VOCAB_PRE_TYPE_LLAMA3, max_digits = 3) and Qwen2 (LLAMA_VOCAB_PRE_TYPE_QWEN2, max_digits = 1):
//   (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
// (Qwen2: \p{N} instead of \p{N}{1,3}.) A digit run is cut left to right into groups of max_digits: "1234567" ->
// "123" "456" "7". \s*[\r\n]+ takes the whole whitespace run up to its last '\r' or '\n'.
inline WordRanges llama3_split(std::string_view text, std::size_t max_digits) {
  PreSplit s(text);
  while (!s.done()) {
    const std::size_t p = s.pos;
    if (const std::size_t k = s.contraction(/*any_case=*/true)) {
      s.emit(p + k);
      continue;
    }
    if (!s.cr_or_lf(p) && !s.number(p) && (s.letter(p) || s.letter(p + 1))) {  // [^\r\n\p{L}\p{N}]?\p{L}+
      s.emit(s.run(p + 1, [&](std::size_t i) { return s.letter(i); }));
      continue;
    }
    if (s.number(p)) {
      s.emit(s.run(p, [&](std::size_t i) { return i - p < max_digits && s.number(i); }));
      continue;
    }
    const std::size_t q = s.cp(p) == ' ' ? p + 1 : p;
    if (s.other(q)) {  //  ?[^\s\p{L}\p{N}]+[\r\n]*
      const std::size_t e = s.run(q, [&](std::size_t i) { return s.other(i); });
      s.emit(s.run(e, [&](std::size_t i) { return s.cr_or_lf(i); }));
      continue;
    }
    std::size_t last_nl = 0;  // \s*[\r\n]+
    for (std::size_t i = p; s.space(i); ++i)
      if (s.cr_or_lf(i)) last_nl = i + 1;
    if (last_nl > 0) s.emit(last_nl);
    else s.emit_spaces_or_one();
  }
  return std::move(s).take();
}

[[nodiscard]] inline WordRanges pre_split(BpePre pre, std::string_view text) {
  switch (pre) {
    case BpePre::Llama3: return llama3_split(text, 3);
    case BpePre::Qwen2: return llama3_split(text, 1);
    default: return gpt2_split(text);
  }
}

class BpeEncoder {
 public:
  // ignore_merges (llama.cpp's LLAMA3 group): a word that is itself a token is emitted whole, unmerged.
  BpeEncoder(const Vocab& v, const TokenIndex& index, BpePre pre, bool ignore_merges)
      : index_(&index), pre_(pre), ignore_merges_(ignore_merges) {
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
    for (const auto& [b0, b1] : pre_split(pre_, text)) {
      word.clear();
      for (std::size_t i = b0; i < b1; ++i) word += alpha.to_utf8[static_cast<unsigned char>(text[i])];
      if (ignore_merges_)
        if (const std::int32_t id = find_token(*index_, word); id >= 0) {
          out.push_back(id);
          continue;
        }
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
  BpePre pre_;
  bool ignore_merges_;
  std::unordered_map<std::string, int> ranks_;
};

}  // namespace edgespec::detail
