// GPT-2 byte-level BPE, as llama.cpp's llm_tokenizer_bpe does it.
//
//   words  = the text cut by the pre-tokenizer's regexes (pretokenizer.hpp), each written as UTF-8
//   (ignore_merges types: Llama 3, tekken) a word that is a token as a whole is emitted as that token
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

#include "edgespec/tokenizer/detail/pretokenizer.hpp"
#include "edgespec/tokenizer/detail/spm.hpp"  // TokenIndex, Symbol
#include "edgespec/tokenizer/detail/unicode.hpp"
#include "edgespec/tokenizer/vocab.hpp"

namespace edgespec::detail {

class BpeEncoder {
 public:
  // ignore_merges (llama.cpp's LLAMA3 group, tekken): a word that is itself a token is emitted whole, unmerged.
  BpeEncoder(const Vocab& v, const TokenIndex& index, BpePre pre, bool ignore_merges)
      : index_(&index), pre_(&pre_tokenizer(pre)), ignore_merges_(ignore_merges) {
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
    CptText cpts;
    cpts.assign(text);
    PreTokenizer::Scratch scratch;
    pre_->split(cpts, scratch);
    std::string bytes;
    std::uint32_t w0 = 0;
    for (const std::uint32_t w1 : scratch.ends) {
      bytes.clear();
      cpts.utf8(std::exchange(w0, w1), w1, bytes);  // from the code points: a malformed byte is now U+FFFD
      word.clear();
      for (const char c : bytes) word += alpha.to_utf8[static_cast<unsigned char>(c)];
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
  const PreTokenizer* pre_;
  bool ignore_merges_;
  std::unordered_map<std::string, int> ranks_;
};

}  // namespace edgespec::detail
