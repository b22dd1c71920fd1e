// Text <-> token ids for Llama-family vocabularies, reproducing llama.cpp's tokenizer (see docs/tokenizers.md).
//
//   Tokenizer tok(vocab_from_gguf(GgufFile("model.gguf")));      // or load_llama2c_tokenizer("tok512.bin", 512)
//   std::vector<std::int32_t> ids = tok.encode("Once upon a time", /*add_bos=*/true);   // {1, 403, 407, 261, 378}
//   std::string text = tok.decode(ids);                                                   // "Once upon a time"
//
// Encoding (llama.cpp llama_tokenize with parse_special = false):
//   1. the text is split around user-defined tokens (token_type 4), which encode as themselves;
//   2. Spm: each remaining fragment that starts the text or follows a user-defined token gets a ' ' prefix when
//      add_space_prefix (so "" -> {} and "Hi" -> "▁Hi"), spaces become U+2581, then BPE by scores + byte fallback;
//      Gpt2: pre-tokenizer regex of tokenizer.ggml.pre (gpt-2, llama3 or qwen2), byte-level alphabet, BPE by
//      merge rank.
// Decoding: control and unknown tokens decode to ""; Spm byte tokens to their raw byte; with add_space_prefix the
// first token after an optional leading BOS loses one leading ' ', so decode(encode(s, b)) == s for valid UTF-8.
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "edgespec/core/error.hpp"
#include "edgespec/tokenizer/vocab.hpp"

#define EDGESPEC_TOKENIZER_DETAIL_OK
#include "edgespec/tokenizer/detail/bpe.hpp"
#include "edgespec/tokenizer/detail/spm.hpp"
#include "edgespec/tokenizer/detail/unicode.hpp"

namespace edgespec {

namespace detail {

struct TokenizerState {
  Vocab vocab;
  TokenIndex index;                         // views into vocab.tokens
  std::vector<std::string> pieces;          // token_to_piece cache
  std::vector<std::int32_t> user_defined;   // user-defined token ids, longest text first
  std::unique_ptr<SpmEncoder> spm;
  std::unique_ptr<BpeEncoder> bpe;

  TokenizerState(const TokenizerState&) = delete;  // index and encoders point into this object
  TokenizerState& operator=(const TokenizerState&) = delete;

  explicit TokenizerState(Vocab v) : vocab(std::move(v)) {
    validate_vocab(vocab, "Tokenizer");
    const BpePre pre = bpe_pre_from_name(vocab.pre);
    if (vocab.kind == Vocab::Kind::Gpt2)
      ES_CHECK(pre != BpePre::Unsupported, "Tokenizer: gpt2 pre-tokenizer '", vocab.pre,
               "' (tokenizer.ggml.pre) is not supported; supported: 'gpt-2', 'llama-bpe' (Llama 3), 'qwen2' "
               "and the names llama.cpp maps to the same regexes (see docs/tokenizers.md)");
    index = make_token_index(vocab);
    if (vocab.kind == Vocab::Kind::Spm) spm = std::make_unique<SpmEncoder>(vocab, index);
    else bpe = std::make_unique<BpeEncoder>(vocab, index, pre, is_llama3_group(vocab.pre));
    pieces.reserve(vocab.tokens.size());
    for (std::size_t i = 0; i < vocab.tokens.size(); ++i) {
      pieces.push_back(make_piece(i));
      if (vocab.types[i] == token_type::user_defined && !vocab.tokens[i].empty())
        user_defined.push_back(static_cast<std::int32_t>(i));
    }
    std::stable_sort(user_defined.begin(), user_defined.end(), [&](std::int32_t a, std::int32_t b) {
      return vocab.tokens[static_cast<std::size_t>(a)].size() > vocab.tokens[static_cast<std::size_t>(b)].size();
    });
  }

  // llama.cpp's token_to_piece with special = false.
  [[nodiscard]] std::string make_piece(std::size_t id) const {
    const std::string& text = vocab.tokens[id];
    switch (vocab.types[id]) {
      case token_type::user_defined: return text;
      case token_type::normal: break;
      case token_type::byte:
        if (vocab.kind == Vocab::Kind::Spm)
          if (const int b = parse_byte_piece(text); b >= 0) return std::string(1, static_cast<char>(b));
        return {};
      default: return {};  // control, unknown, unused, undefined
    }
    std::string out;
    out.reserve(text.size());
    if (vocab.kind == Vocab::Kind::Spm) {  // U+2581 -> ' '
      for (std::size_t i = 0; i < text.size(); ++i) {
        if (text.compare(i, 3, "\xE2\x96\x81") == 0) {
          out += ' ';
          i += 2;
        } else {
          out += text[i];
        }
      }
      return out;
    }
    const ByteAlphabet& alpha = byte_alphabet();  // GPT-2 code points -> bytes
    for (std::size_t i = 0; i < text.size();) {
      const Utf8Cpt u = decode_utf8(text, i);
      if (const int b = alpha.byte_of(u.cp); b >= 0 && u.cp != kReplacementChar) out += static_cast<char>(b);
      else out.append(text, i, u.len);  // not in the alphabet: kept as written
      i += u.len;
    }
    return out;
  }

  struct Fragment {
    std::size_t off, len;
    std::int32_t token;  // -1: raw text
  };

  [[nodiscard]] std::vector<Fragment> partition(std::string_view text) const {
    std::vector<Fragment> frags;
    if (text.empty()) return frags;
    frags.push_back({0, text.size(), -1});
    for (const std::int32_t id : user_defined) {
      const std::string_view t = vocab.tokens[static_cast<std::size_t>(id)];
      std::vector<Fragment> next;
      for (const Fragment& f : frags) {
        if (f.token >= 0) {
          next.push_back(f);
          continue;
        }
        std::size_t at = f.off;
        const std::size_t end = f.off + f.len;
        const std::string_view hay = text.substr(0, end);
        for (std::size_t m; (m = hay.find(t, at)) != std::string_view::npos;) {
          if (m > at) next.push_back({at, m - at, -1});
          next.push_back({m, t.size(), id});
          at = m + t.size();
        }
        if (at < end) next.push_back({at, end - at, -1});
      }
      frags = std::move(next);
    }
    return frags;
  }
};

}  // namespace detail

class Tokenizer {
 public:
  // Throws edgespec::Error when the vocabulary is inconsistent or uses an unsupported pre-tokenizer.
  explicit Tokenizer(Vocab vocab) : s_(std::make_shared<const detail::TokenizerState>(std::move(vocab))) {}

  // Token ids of `text`, BOS first when add_bos (EOS is never appended).
  [[nodiscard]] std::vector<std::int32_t> encode(std::string_view text, bool add_bos) const {
    const detail::TokenizerState& s = *s_;
    std::vector<std::int32_t> out;
    out.reserve(text.size() / 2 + 2);
    if (add_bos) {
      ES_CHECK(s.vocab.bos >= 0, "Tokenizer::encode: add_bos requested but the vocabulary has no BOS token");
      out.push_back(s.vocab.bos);
    }
    bool prev_special = true;  // Spm: the first fragment and those after a user-defined token get the ' ' prefix
    std::string buf;
    for (const auto& f : s.partition(text)) {
      if (f.token >= 0) {
        out.push_back(f.token);
        prev_special = true;
        continue;
      }
      const std::string_view frag = text.substr(f.off, f.len);
      if (s.spm) {
        buf.clear();
        if (s.vocab.add_space_prefix && prev_special) buf += "\xE2\x96\x81";
        for (const char c : frag) {
          if (c == ' ') buf += "\xE2\x96\x81";
          else buf += c;
        }
        s.spm->encode(buf, out);
      } else {
        s.bpe->encode(frag, out);
      }
      prev_special = false;
    }
    return out;
  }

  // The text of one token (control/unknown tokens: ""). Throws for an id outside the vocabulary.
  [[nodiscard]] std::string token_to_piece(std::int32_t id) const { return piece(id); }

  // Concatenated pieces; with add_space_prefix the first token after an optional leading BOS loses one ' '.
  [[nodiscard]] std::string decode(std::span<const std::int32_t> ids) const {
    const detail::TokenizerState& s = *s_;
    std::string out;
    std::size_t i = 0;
    if (!ids.empty() && ids[0] == s.vocab.bos && s.vocab.bos >= 0) {
      out += piece(ids[0]);
      i = 1;
    }
    bool strip = s.vocab.kind == Vocab::Kind::Spm && s.vocab.add_space_prefix;
    for (; i < ids.size(); ++i) {
      const std::string& p = piece(ids[i]);
      if (strip && !p.empty() && p[0] == ' ') out.append(p, 1);
      else out += p;
      strip = false;
    }
    return out;
  }

  [[nodiscard]] const Vocab& vocab() const noexcept { return s_->vocab; }
  [[nodiscard]] int bos() const noexcept { return s_->vocab.bos; }
  [[nodiscard]] int eos() const noexcept { return s_->vocab.eos; }

 private:
  [[nodiscard]] const std::string& piece(std::int32_t id) const {
    ES_CHECK(id >= 0 && id < s_->vocab.size(), "Tokenizer: token id ", id, " is outside the vocabulary (",
             s_->vocab.size(), " tokens)");
    return s_->pieces[static_cast<std::size_t>(id)];
  }

  std::shared_ptr<const detail::TokenizerState> s_;
};

}  // namespace edgespec
