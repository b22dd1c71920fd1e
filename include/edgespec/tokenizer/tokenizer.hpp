// Text <-> token ids, reproducing llama.cpp's tokenizer (see docs/tokenizers.md).
//
//   Tokenizer tok(vocab_from_gguf(GgufFile("model.gguf")));      // or load_llama2c_tokenizer("tok512.bin", 512)
//   std::vector<std::int32_t> ids = tok.encode("Once upon a time", /*add_special=*/true);  // {1, 403, 407, 261, 378}
//   std::string text = tok.decode(ids);                                                     // "Once upon a time"
//
// Encoding is llama.cpp's llama_tokenize(text, add_special, parse_special):
//   1. the text is split around special tokens, longest text first: user-defined tokens (token_type 4) always,
//      control and unknown tokens only with parse_special; a token marked lstrip / rstrip (llama.cpp sets these
//      for Phi-3 and jina-v2 vocabularies) also swallows the ASCII whitespace before / after it;
//   2. Spm: each remaining fragment that starts the text or follows a special token gets a ' ' prefix when
//      add_space_prefix (so "" -> {} and "Hi" -> "▁Hi"), spaces become U+2581, then BPE by scores + byte fallback;
//      Gpt2: the pre-tokenizer regexes of tokenizer.ggml.pre, byte-level alphabet, BPE by merge rank;
//   3. add_special puts BOS first when vocab.add_bos and EOS last when vocab.add_eos.
// Decoding: control and unknown tokens decode to "" unless `special`; Spm byte tokens to their raw byte; with
// add_space_prefix the first token after an optional leading BOS loses one leading ' ', so
// decode(encode(s, b)) == s for valid UTF-8. detokenize() is llama.cpp's llama_detokenize, clean_spaces included.
// End of generation: llama.cpp's special_eog_ids (EOS, EOT, EOM, FIM pad/repo/separator and tokens such as
// <|im_end|> or <|eot_id|> found by their text), see is_eog().
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <optional>
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

// llama.cpp's llama_token_attr bits that the tokenizer uses.
namespace attr {
inline constexpr std::uint8_t unknown = 1, unused = 2, normal = 4, control = 8, user_defined = 16, byte = 32,
                              lstrip = 64, rstrip = 128;
}

[[nodiscard]] inline std::uint8_t attr_of_type(std::int32_t type) noexcept {
  switch (type) {
    case token_type::normal: return attr::normal;
    case token_type::unknown: return attr::unknown;
    case token_type::control: return attr::control;
    case token_type::user_defined: return attr::user_defined;
    case token_type::unused: return attr::unused;
    case token_type::byte: return attr::byte;
    default: return 0;  // undefined
  }
}

[[nodiscard]] inline bool ascii_space(char c) noexcept { return c == ' ' || (c >= '\t' && c <= '\r'); }

struct TokenizerState {
  Vocab vocab;
  TokenIndex index;                      // views into vocab.tokens
  std::vector<std::uint8_t> attrs;       // attr:: bits per token, after llama.cpp's overrides
  std::vector<std::string> pieces;       // token_to_piece(id, special = false)
  std::vector<std::int32_t> specials;    // control, user-defined and unknown ids, longest text first
  std::vector<std::int32_t> eog;         // end-of-generation ids, sorted
  std::int32_t eot = -1, eom = -1;
  std::unique_ptr<SpmEncoder> spm;
  std::unique_ptr<BpeEncoder> bpe;

  TokenizerState(const TokenizerState&) = delete;  // index and encoders point into this object
  TokenizerState& operator=(const TokenizerState&) = delete;

  explicit TokenizerState(Vocab v) : vocab(std::move(v)) {
    validate_vocab(vocab, "Tokenizer");
    const PreTokenizerName* pre = find_pre_tokenizer(vocab.pre);
    if (vocab.kind == Vocab::Kind::Gpt2)
      ES_CHECK(pre != nullptr, "Tokenizer: gpt2 pre-tokenizer '", vocab.pre,
               "' (tokenizer.ggml.pre) is not supported; supported: ", supported_pre_tokenizers());
    index = make_token_index(vocab);
    if (vocab.kind == Vocab::Kind::Spm) spm = std::make_unique<SpmEncoder>(vocab, index);
    else bpe = std::make_unique<BpeEncoder>(vocab, index, pre->pre, pre->ignore_merges);
    attrs.reserve(vocab.tokens.size());
    for (const std::int32_t t : vocab.types) attrs.push_back(attr_of_type(t));
    find_special_tokens();
    pieces.reserve(vocab.tokens.size());
    for (std::size_t i = 0; i < vocab.tokens.size(); ++i) {
      pieces.push_back(make_piece(i));
      if ((attrs[i] & (attr::control | attr::user_defined | attr::unknown)) && !vocab.tokens[i].empty())
        specials.push_back(static_cast<std::int32_t>(i));
    }
    std::stable_sort(specials.begin(), specials.end(), [&](std::int32_t a, std::int32_t b) {
      return vocab.tokens[static_cast<std::size_t>(a)].size() > vocab.tokens[static_cast<std::size_t>(b)].size();
    });
    set_strip_attributes();
  }

  [[nodiscard]] std::int32_t id_of(std::string_view text) const { return find_token(index, text); }

  // llama.cpp's llama_vocab::load after the ids are read: EOT, EOM and FIM ids not given by the file are found by
  // their text, and every token found so, or in the end-of-generation list, becomes a control token. Where
  // several texts of one list are present llama.cpp takes whichever its hash map yields first; here the lowest id.
  void find_special_tokens() {
    const auto find = [&](std::int32_t& id, std::initializer_list<std::string_view> texts) {
      if (id >= 0) return;
      for (const std::string_view t : texts)
        if (const std::int32_t i = id_of(t); i >= 0 && (id < 0 || i < id)) id = i;
      if (id >= 0) attrs[static_cast<std::size_t>(id)] = attr::control;
    };
    eot = vocab.eot, eom = vocab.eom;
    std::int32_t fim_pre = vocab.fim_pre, fim_suf = vocab.fim_suf, fim_mid = vocab.fim_mid;
    std::int32_t fim_pad = vocab.fim_pad, fim_rep = vocab.fim_rep, fim_sep = vocab.fim_sep;
    find(eot, {"<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<EOT>",
               "<\xEF\xBD\x9C" "end\xE2\x96\x81of\xE2\x96\x81sentence\xEF\xBD\x9C>"});  // DeepSeek <｜end▁of▁sentence｜>
    find(eom, {"<|eom_id|>"});
    find(fim_pre, {"<|fim_prefix|>", "<fim-prefix>", "<\xEF\xBD\x9C" "fim\xE2\x96\x81" "begin\xEF\xBD\x9C>", "<PRE>"});
    find(fim_suf, {"<|fim_suffix|>", "<fim-suffix>", "<\xEF\xBD\x9C" "fim\xE2\x96\x81hole\xEF\xBD\x9C>", "<SUF>"});
    find(fim_mid, {"<|fim_middle|>", "<fim-middle>", "<\xEF\xBD\x9C" "fim\xE2\x96\x81" "end\xEF\xBD\x9C>", "<MID>"});
    find(fim_pad, {"<|fim_pad|>", "<fim-pad>", "<PAD>"});
    find(fim_rep, {"<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>"});
    find(fim_sep, {"<|file_sep|>"});

    for (const std::int32_t id : {fim_pad, fim_rep, fim_sep})
      if (id >= 0) eog.push_back(id);
    for (const std::string_view t :
         {"<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|eom_id|>", "<EOT>"})
      if (const std::int32_t id = id_of(t); id >= 0) {
        eog.push_back(id);
        attrs[static_cast<std::size_t>(id)] = attr::control;
      }
    for (const std::int32_t id : {vocab.eos, eot, eom})
      if (id >= 0) eog.push_back(id);
    std::sort(eog.begin(), eog.end());
    eog.erase(std::unique(eog.begin(), eog.end()), eog.end());
  }

  // llama.cpp's per-model attributes: jina-v2 "<mask>" takes the spaces before it; Phi-3's special tokens (and
  // "</s>", but not "<unk>", "<s>", "<|endoftext|>") take the spaces after them.
  void set_strip_attributes() {
    const auto contains_any = [](std::string_view s, std::initializer_list<std::string_view> subs) {
      for (const std::string_view x : subs)
        if (s.find(x) != std::string_view::npos) return true;
      return false;
    };
    const auto set = [&](std::string_view text, std::uint8_t bit, bool on) {
      if (const std::int32_t id = id_of(text); id >= 0) {
        auto& a = attrs[static_cast<std::size_t>(id)];
        a = static_cast<std::uint8_t>(on ? a | bit : a & ~bit);
      }
    };
    std::string name = vocab.name;
    for (char& c : name)
      if (c >= 'A' && c <= 'Z') c = static_cast<char>(c + 32);
    if (contains_any(vocab.pre, {"jina-v2-de", "jina-v2-es", "jina-v2-code"})) {
      set("<mask>", attr::lstrip, true);
    } else if (contains_any(name, {"phi-3", "phi3"})) {
      for (const std::int32_t id : specials) attrs[static_cast<std::size_t>(id)] |= attr::rstrip;
      set("</s>", attr::rstrip, true);
      for (const std::string_view t : {"<unk>", "<s>", "<|endoftext|>"}) set(t, attr::rstrip, false);
    }
  }

  // llama.cpp's token_to_piece with special = false (control and unknown tokens: "").
  [[nodiscard]] std::string make_piece(std::size_t id) const {
    const std::string& text = vocab.tokens[id];
    const std::uint8_t a = attrs[id];
    if (a & (attr::control | attr::unknown | attr::unused) || a == 0) return {};
    if (a & attr::user_defined) return text;
    if (a & attr::byte) {
      if (vocab.kind == Vocab::Kind::Spm)
        if (const int b = parse_byte_piece(text); b >= 0) return std::string(1, static_cast<char>(b));
      return {};
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
    // GPT-2 alphabet code points -> bytes; llama.cpp's llama_decode_text writes a code point outside the alphabet
    // (or a malformed byte, read as U+FFFD) as "[UNK_BYTE_0x<its UTF-8 in hex>" + the whole token text + "]".
    const ByteAlphabet& alpha = byte_alphabet();
    for (std::size_t i = 0; i < text.size();) {
      const Utf8Cpt u = decode_utf8(text, i);
      if (const int b = alpha.byte_of(u.cp); b >= 0) {
        out += static_cast<char>(b);
      } else {
        static constexpr char hex[] = "0123456789abcdef";
        std::string utf8;
        append_utf8(utf8, u.cp);
        out += "[UNK_BYTE_0x";
        for (const char c : utf8) {
          out += hex[static_cast<unsigned char>(c) >> 4];
          out += hex[static_cast<unsigned char>(c) & 15];
        }
        out += text;
        out += ']';
      }
      i += u.len;
    }
    return out;
  }

  struct Fragment {
    std::size_t off, len;
    std::int32_t token;  // -1: raw text
  };

  // llama.cpp's tokenizer_st_partition.
  [[nodiscard]] std::vector<Fragment> partition(std::string_view text, bool parse_special) const {
    std::vector<Fragment> frags;
    if (text.empty()) return frags;
    frags.push_back({0, text.size(), -1});
    std::vector<Fragment> next;
    for (const std::int32_t id : specials) {
      const std::uint8_t a = attrs[static_cast<std::size_t>(id)];
      if (!parse_special && (a & (attr::control | attr::unknown))) continue;
      const std::string_view t = vocab.tokens[static_cast<std::size_t>(id)];
      next.clear();
      for (const Fragment& f : frags) {
        if (f.token >= 0) {
          next.push_back(f);
          continue;
        }
        std::size_t at = f.off;
        const std::size_t end = f.off + f.len;
        const std::string_view hay = text.substr(0, end);
        for (std::size_t m; at < end && (m = hay.find(t, at)) != std::string_view::npos;) {
          std::size_t left = m;
          if (a & attr::lstrip)
            while (left > at && ascii_space(text[left - 1])) --left;
          if (left > at) next.push_back({at, left - at, -1});
          next.push_back({m, t.size(), id});
          at = m + t.size();
          if (a & attr::rstrip)
            while (at < end && ascii_space(text[at])) ++at;
        }
        if (at < end) next.push_back({at, end - at, -1});
      }
      frags.swap(next);
    }
    return frags;
  }
};

}  // namespace detail

class Tokenizer {
 public:
  // Throws edgespec::Error when the vocabulary is inconsistent or uses an unsupported pre-tokenizer.
  explicit Tokenizer(Vocab vocab) : s_(std::make_shared<const detail::TokenizerState>(std::move(vocab))) {}

  // Token ids of `text`: llama.cpp's llama_tokenize(text, add_special, parse_special). add_special adds BOS when
  // vocab().add_bos and EOS when vocab().add_eos; parse_special lets control tokens in the text ("<|im_start|>")
  // become those tokens instead of their characters.
  [[nodiscard]] std::vector<std::int32_t> encode(std::string_view text, bool add_special,
                                                 bool parse_special = false) const {
    const detail::TokenizerState& s = *s_;
    const Vocab& v = s.vocab;
    std::vector<std::int32_t> out;
    out.reserve(text.size() / 2 + 2);
    if (add_special && v.add_bos) {
      ES_CHECK(v.bos >= 0, "Tokenizer::encode: the vocabulary asks for a BOS token (add_bos) but has none");
      out.push_back(v.bos);
    }
    bool prev_special = true;  // Spm: the first fragment and those after a special token get the ' ' prefix
    std::string buf;
    for (const auto& f : s.partition(text, parse_special)) {
      if (f.token >= 0) {
        out.push_back(f.token);
        prev_special = true;
        continue;
      }
      const std::string_view frag = text.substr(f.off, f.len);
      if (s.spm) {
        buf.clear();
        if (v.add_space_prefix && prev_special) buf += "\xE2\x96\x81";
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
    if (add_special && v.add_eos) {
      ES_CHECK(v.eos >= 0, "Tokenizer::encode: the vocabulary asks for an EOS token (add_eos) but has none");
      out.push_back(v.eos);
    }
    return out;
  }

  // The text of one token. Control and unknown tokens give "" unless `special`, then their text (llama.cpp's
  // token_to_piece). Throws for an id outside the vocabulary.
  [[nodiscard]] std::string token_to_piece(std::int32_t id, bool special = false) const {
    return std::string(piece(id, special));
  }

  // Concatenated pieces; with add_space_prefix (Spm) the first token after an optional leading BOS loses one ' ',
  // so decode(encode(s, b)) == s. `special` as in token_to_piece.
  [[nodiscard]] std::string decode(std::span<const std::int32_t> ids, bool special = false) const {
    const detail::TokenizerState& s = *s_;
    std::string out;
    std::size_t i = 0;
    if (!ids.empty() && ids[0] == s.vocab.bos && s.vocab.bos >= 0) {
      out += piece(ids[0], special);
      i = 1;
    }
    bool strip = s.vocab.kind == Vocab::Kind::Spm && s.vocab.add_space_prefix;
    for (; i < ids.size(); ++i) {
      const std::string_view p = piece(ids[i], special);
      if (strip && !p.empty() && p[0] == ' ') out.append(p.substr(1));
      else out += p;
      strip = false;
    }
    return out;
  }

  // llama.cpp's llama_detokenize(ids, remove_special, unparse_special), byte for byte: remove_special drops a
  // leading BOS / trailing EOS that add_special would have added; the first piece loses one leading ' ' when
  // add_space_prefix (not after a dropped BOS); with clean_spaces, " ?", " !", " .", " ,", " ' ", " 's", " 'm",
  // " 're", " 've" lose their space.
  [[nodiscard]] std::string detokenize(std::span<const std::int32_t> ids, bool remove_special = false,
                                       bool unparse_special = false) const {
    const Vocab& v = s_->vocab;
    bool remove_space = v.add_space_prefix;
    if (remove_special && v.add_bos && !ids.empty() && ids.front() == v.bos) {
      remove_space = false;
      ids = ids.subspan(1);
    }
    if (remove_special && v.add_eos && !ids.empty() && ids.back() == v.eos) ids = ids.first(ids.size() - 1);
    std::string text;
    for (const std::int32_t id : ids) {
      std::string_view p = piece(id, unparse_special);
      if (remove_space && !p.empty() && p[0] == ' ') p.remove_prefix(1);
      remove_space = false;
      text += p;
    }
    if (v.clean_spaces) clean_spaces(text);
    return text;
  }

  // llama.cpp's special_eog_ids: generation stops at these (EOS, EOT, EOM, <|im_end|>, <|eot_id|>, ...).
  [[nodiscard]] bool is_eog(int id) const noexcept {
    return id >= 0 && std::binary_search(s_->eog.begin(), s_->eog.end(), static_cast<std::int32_t>(id));
  }
  [[nodiscard]] const std::vector<int>& eog_ids() const noexcept { return s_->eog; }

  // The id of the token whose text is exactly `text` (as llama.cpp's token_to_id: for a repeated text, its last
  // id), or nullopt.
  [[nodiscard]] std::optional<int> token_id(std::string_view text) const {
    const std::int32_t id = s_->id_of(text);
    return id >= 0 ? std::optional<int>(id) : std::nullopt;
  }

  [[nodiscard]] const Vocab& vocab() const noexcept { return s_->vocab; }
  [[nodiscard]] int bos() const noexcept { return s_->vocab.bos; }
  [[nodiscard]] int eos() const noexcept { return s_->vocab.eos; }
  [[nodiscard]] int eot() const noexcept { return s_->eot; }  // from the file or found by text; -1: none
  [[nodiscard]] int eom() const noexcept { return s_->eom; }

 private:
  [[nodiscard]] std::string_view piece(std::int32_t id, bool special) const {
    ES_CHECK(id >= 0 && id < s_->vocab.size(), "Tokenizer: token id ", id, " is outside the vocabulary (",
             s_->vocab.size(), " tokens)");
    const auto i = static_cast<std::size_t>(id);
    if (special && (s_->attrs[i] & (detail::attr::control | detail::attr::unknown))) return s_->vocab.tokens[i];
    return s_->pieces[i];
  }

  // llama_detokenize's three clean_spaces passes over the text; each keeps t[0] and reads the previous pass.
  static void clean_spaces(std::string& t) {
    if (t.empty()) return;
    std::string out;
    out.reserve(t.size());
    out += t[0];
    for (std::size_t i = 1; i < t.size(); ++i) {  // " ?" " !" " ." " ," -> the space goes
      const char x = t[i];
      if (t[i - 1] == ' ' && (x == '?' || x == '!' || x == '.' || x == ',')) out.pop_back();
      out += x;
    }
    t.swap(out);
    out.assign(1, t[0]);
    std::size_t dropped = 0;  // index of the space dropped after a " ' " (llama.cpp zeroes it: it is no ' ' later)
    for (std::size_t i = 1; i < t.size(); ++i) {  // " ' " -> "'"
      const char x = t[i];
      const bool prev_space = t[i - 1] == ' ' && (dropped == 0 || dropped != i - 1);
      if (x == '\'' && i + 1 < t.size() && prev_space && t[i + 1] == ' ') {
        out.pop_back();
        dropped = ++i;
      }
      out += x;
    }
    t.swap(out);
    out.assign(1, t[0]);
    for (std::size_t i = 1; i < t.size(); ++i) {  // " 's" " 'm" " 're" " 've" -> the space goes
      const char x = t[i];
      if (t[i - 1] == ' ' && x == '\'' && i + 1 < t.size()) {
        const char x1 = t[i + 1];
        const bool re_ve = i + 2 < t.size() && (x1 == 'r' || x1 == 'v') && t[i + 2] == 'e';
        if (x1 == 's' || x1 == 'm' || re_ve) out.pop_back();
      }
      out += x;
    }
    t.swap(out);
  }

  std::shared_ptr<const detail::TokenizerState> s_;
};

}  // namespace edgespec
