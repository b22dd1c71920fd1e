// Byte-level BPE pre-tokenizers: text -> words, exactly as llama.cpp's unicode_regex_split cuts it.
//
//   cpts   = the text as code points (a malformed UTF-8 byte is one U+FFFD)
//   pieces = {all of cpts}
//   for each regex of the type, in order:  every piece is cut again by that regex (matches and the gaps between
//                                           them are pieces; nothing looks across the end of a piece)
//   words  = the pieces, each written back as UTF-8 from its code points (so a malformed byte becomes EF BF BD)
//
// llama.cpp runs two of the regexes with hand-written code (unicode_regex_split_custom_gpt2 / _llama3) and the
// rest with std::regex over a collapsed or wide view of the code points (see regex.hpp). Here the GPT-2 and
// Llama 3 regexes, and the Qwen2 regex (Llama 3 with single digits, which llama.cpp gives to std::regex), have
// hand-written splitters for speed; every other regex runs on detail::Regex, which follows std::regex's rules.
#pragma once

#ifndef EDGESPEC_TOKENIZER_DETAIL_OK
#error "edgespec/tokenizer/detail/ is internal: include edgespec/tokenizer/tokenizer.hpp"
#endif

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "edgespec/core/error.hpp"
#include "edgespec/tokenizer/detail/regex.hpp"
#include "edgespec/tokenizer/detail/unicode.hpp"
#include "edgespec/tokenizer/vocab.hpp"

namespace edgespec::detail {

// Code points of a text with the classes the splitters test: flags = CptClass | kSpaceFlag for White_Space.
struct CptText {
  static constexpr std::uint8_t kSpaceFlag = 8;
  std::vector<std::uint32_t> cp;
  std::vector<std::uint8_t> flags;

  void assign(std::string_view text) {
    cp.clear();
    flags.clear();
    cp.reserve(text.size());
    flags.reserve(text.size());
    for (std::size_t off = 0; off < text.size();) {
      const auto c = static_cast<unsigned char>(text[off]);
      if (c < 0x80) {  // ASCII fast path
        cp.push_back(c);
        flags.push_back(ascii_flags()[c]);
        ++off;
        continue;
      }
      const Utf8Cpt u = decode_utf8(text, off);
      cp.push_back(u.cp);
      flags.push_back(static_cast<std::uint8_t>(static_cast<std::uint8_t>(cpt_class(u.cp)) |
                                                (is_whitespace(u.cp) ? kSpaceFlag : 0)));
      off += u.len;
    }
  }
  [[nodiscard]] std::uint32_t size() const noexcept { return static_cast<std::uint32_t>(cp.size()); }

  // Appends the UTF-8 of code points [b, e) to out.
  void utf8(std::uint32_t b, std::uint32_t e, std::string& out) const {
    for (std::uint32_t i = b; i < e; ++i) append_utf8(out, cp[i]);
  }

 private:
  static const std::array<std::uint8_t, 128>& ascii_flags() {
    static const std::array<std::uint8_t, 128> t = [] {
      std::array<std::uint8_t, 128> a{};
      for (std::uint32_t c = 0; c < 128; ++c)
        a[c] = static_cast<std::uint8_t>(static_cast<std::uint8_t>(cpt_class(c)) | (is_whitespace(c) ? kSpaceFlag : 0));
      return a;
    }();
    return t;
  }
};

// One piece [b, e) of a CptText being cut by a hand-written splitter: the accessors see nothing outside it (as
// llama.cpp's _get_cpt / _get_flags return OUT_OF_RANGE there) and emit() records where a word ends.
class PieceCutter {
 public:
  PieceCutter(const CptText& t, std::uint32_t b, std::uint32_t e, std::vector<std::uint32_t>& ends)
      : pos(b), t_(t), e_(e), ends_(ends) {}

  std::uint32_t pos;  // code points before pos are emitted

  [[nodiscard]] bool done() const noexcept { return pos >= e_; }
  [[nodiscard]] std::uint32_t cp(std::uint32_t i) const noexcept { return i < e_ ? t_.cp[i] : 0xFFFFFFFFu; }
  [[nodiscard]] CptClass cls(std::uint32_t i) const noexcept {
    return static_cast<CptClass>(t_.flags[i] & 7u);
  }
  [[nodiscard]] bool letter(std::uint32_t i) const noexcept { return i < e_ && cls(i) == CptClass::Letter; }
  [[nodiscard]] bool number(std::uint32_t i) const noexcept { return i < e_ && cls(i) == CptClass::Number; }
  [[nodiscard]] bool space(std::uint32_t i) const noexcept { return i < e_ && (t_.flags[i] & CptText::kSpaceFlag); }
  [[nodiscard]] bool other(std::uint32_t i) const noexcept {  // [^\s\p{L}\p{N}]
    return i < e_ && !(t_.flags[i] & CptText::kSpaceFlag) && cls(i) != CptClass::Letter && cls(i) != CptClass::Number;
  }
  [[nodiscard]] bool cr_or_lf(std::uint32_t i) const noexcept { return cp(i) == '\r' || cp(i) == '\n'; }

  void emit(std::uint32_t end) {
    ends_.push_back(end);
    pos = end;
  }
  // First index >= i where pred fails.
  template <class Pred>
  [[nodiscard]] std::uint32_t run(std::uint32_t i, Pred pred) const {
    while (pred(i)) ++i;
    return i;
  }

  // Length of the contraction 's 't 'm 'd 're 've 'll at pos (0: none); any_case: (?i:...), ASCII only (no other
  // code point lower-cases to one of these letters).
  [[nodiscard]] std::uint32_t contraction(bool any_case) const noexcept {
    if (cp(pos) != '\'') return 0;
    const auto low = [&](std::uint32_t i) { return any_case && cp(i) >= 'A' && cp(i) <= 'Z' ? cp(i) + 32 : cp(i); };
    const std::uint32_t a = low(pos + 1), b = low(pos + 2);
    if (a == 's' || a == 't' || a == 'm' || a == 'd') return 2;
    if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return 3;
    return 0;
  }

  // The regexes' last alternatives \s+(?!\S)|\s+ , and one code point when nothing matched.
  void emit_spaces_or_one() {
    const std::uint32_t e = run(pos, [&](std::uint32_t i) { return space(i); });
    if (e - pos > 1 && e < e_) emit(e - 1);  // leave the last space to the word that follows
    else emit(e > pos ? e : pos + 1);
  }

 private:
  const CptText& t_;
  std::uint32_t e_;
  std::vector<std::uint32_t>& ends_;
};

// GPT-2 (llama.cpp's unicode_regex_split_custom_gpt2):
//   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)   (then \s+, as the custom code does)
inline void gpt2_split(const CptText& t, std::uint32_t b, std::uint32_t e, std::vector<std::uint32_t>& ends) {
  PieceCutter s(t, b, e, ends);
  while (!s.done()) {
    if (const std::uint32_t k = s.contraction(/*any_case=*/false)) {
      s.emit(s.pos + k);
      continue;
    }
    const std::uint32_t q = s.cp(s.pos) == ' ' ? s.pos + 1 : s.pos;  // optional leading space of the next three
    if (s.letter(q)) s.emit(s.run(q, [&](std::uint32_t i) { return s.letter(i); }));
    else if (s.number(q)) s.emit(s.run(q, [&](std::uint32_t i) { return s.number(i); }));
    else if (s.other(q)) s.emit(s.run(q, [&](std::uint32_t i) { return s.other(i); }));
    else s.emit_spaces_or_one();
  }
}

// Llama 3 (max_digits = 3, llama.cpp's unicode_regex_split_custom_llama3) and Qwen2 (max_digits = 1):
//   (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
// A digit run is cut left to right into groups of max_digits: "1234567" -> "123" "456" "7". \s*[\r\n]+ takes the
// whole whitespace run up to its last '\r' or '\n'.
inline void llama3_split(const CptText& t, std::uint32_t b, std::uint32_t e, std::vector<std::uint32_t>& ends,
                         std::uint32_t max_digits) {
  PieceCutter s(t, b, e, ends);
  while (!s.done()) {
    const std::uint32_t p = s.pos;
    if (const std::uint32_t k = s.contraction(/*any_case=*/true)) {
      s.emit(p + k);
      continue;
    }
    if (!s.cr_or_lf(p) && !s.number(p) && (s.letter(p) || s.letter(p + 1))) {  // [^\r\n\p{L}\p{N}]?\p{L}+
      s.emit(s.run(p + 1, [&](std::uint32_t i) { return s.letter(i); }));
      continue;
    }
    if (s.number(p)) {
      s.emit(s.run(p, [&](std::uint32_t i) { return i - p < max_digits && s.number(i); }));
      continue;
    }
    const std::uint32_t q = s.cp(p) == ' ' ? p + 1 : p;
    if (s.other(q)) {  //  ?[^\s\p{L}\p{N}]+[\r\n]*
      const std::uint32_t o = s.run(q, [&](std::uint32_t i) { return s.other(i); });
      s.emit(s.run(o, [&](std::uint32_t i) { return s.cr_or_lf(i); }));
      continue;
    }
    std::uint32_t last_nl = 0;  // \s*[\r\n]+
    for (std::uint32_t i = p; s.space(i); ++i)
      if (s.cr_or_lf(i)) last_nl = i + 1;
    if (last_nl > 0) s.emit(last_nl);
    else s.emit_spaces_or_one();
  }
}

// The regexes of each pre-tokenizer type, as llama.cpp's llm_tokenizer_bpe lists them (its LLAMA_VOCAB_PRE_TYPE_*
// cases), applied in order.
namespace pre_regex {
inline constexpr std::string_view gpt2 = R"re('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S))re";
inline constexpr std::string_view llama3 =
    R"re((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)re";
inline constexpr std::string_view qwen2 =
    R"re((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)re";
inline constexpr std::string_view cjk = R"re([一-龥ࠀ-一가-퟿]+)re";  // U+4E00-U+9FA5, U+0800-U+4E00, U+AC00-U+D7FF
inline constexpr std::string_view bloom = R"re( ?[^(\s|.,!?…。，、।۔،)]+)re";

inline std::vector<std::string_view> of(BpePre pre) {
  switch (pre) {
    case BpePre::Default:
      return {R"re([\p{P}\$\+<=>\^~\|]+)re", gpt2, R"re(\p{N}+)re", R"re([0-9][0-9][0-9])re"};
    case BpePre::Gpt2: return {gpt2};
    case BpePre::Llama3: return {llama3};
    case BpePre::Qwen2: return {qwen2};
    case BpePre::DeepseekLlm:
      return {R"re([\r\n])re",
              R"re(\s?[A-Za-zµÀ-ÖØ-öø-ƺƼ-ƿǄ-ʓʕ-ʯͰ-ͳͶͷͻ-ͽͿΆΈ-ΊΌΎ-ΡΣ-ϵϷ-ҁҊ-ԯԱ-ՖႠ-ჅᎠ-Ᏽᏸ-ᏽᲐ-ᲺᲽ-Ჿᴀ-ᴫᵫ-ᵷᵹ-ᶚḀ-ἕἘ-Ἕἠ-ὅὈ-Ὅὐ-ὗὙὛὝὟ-ώᾀ-ᾴᾶ-ᾼιῂ-ῄῆ-ῌῐ-ΐῖ-Ίῠ-Ῥῲ-ῴῶ-ῼℂℇℊ-ℓℕℙ-ℝℤΩℨK-ℭℯ-ℴℹℼ-ℿⅅ-ⅉⅎↃↄⰀ-ⱻⱾ-ⳤⳫ-ⳮⳲⳳꙀ-ꙭꚀ-ꚛꜢ-ꝯꝱ-ꞇꞋ-ꞎꭰ-ꮿﬀ-ﬆﬓ-ﬗＡ-Ｚａ-ｚ𐐀-𐑏𐒰-𐓓𐓘-𐓻𐲀-𐲲𐳀-𐳲𑢠-𑣟𞤀-𞥃]+)re",
              R"re(\s?[!-/:-~！-／：-～‘-‟　-。]+)re", R"re(\s+$)re", cjk, R"re(\p{N}+)re"};
    case BpePre::DeepseekCoder:
      return {R"re([\r\n])re", R"re(\s?\p{L}+)re", R"re(\s?\p{P}+)re", cjk, R"re(\p{N})re"};
    case BpePre::Deepseek3:
      return {R"re(\p{N}{1,3})re", R"re([一-龥぀-ゟ゠-ヿ]+)re",
              R"re([!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+| ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)re"};
    case BpePre::Falcon: return {R"re([\p{P}\$\+<=>\^~\|`]+)re", gpt2, R"re([0-9][0-9][0-9])re"};
    case BpePre::Starcoder: return {R"re(\p{N})re", gpt2};
    case BpePre::Bloom: return {bloom};
    case BpePre::Viking: return {bloom, R"re(\p{N})re"};
    case BpePre::Tekken:
      return {R"re([^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))*((?=[\p{L}])([^A-Z]))+|[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))+((?=[\p{L}])([^A-Z]))*|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+)re"};
    case BpePre::Chameleon:
      return {R"re(<sentinel:[0-9]+>)re", R"re((IMGIMG)((A|B|C|D|E|F|G|H|I){1,4})Z)re", R"re(([\t\n]|    |  ))re",
              R"re(\p{N})re", R"re([\p{P}!-/:-@\[-`{-~])re", gpt2};
    case BpePre::Gpt4o:  // newer llama.cpp (LLAMA_VOCAB_PRE_TYPE_GPT4O)
      return {R"re([^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))*((?=[\p{L}])([^A-Z]))+(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))+((?=[\p{L}])([^A-Z]))*(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+)re"};
    case BpePre::Unsupported: break;
  }
  return {};
}
}  // namespace pre_regex

// The words of a text for one pre-tokenizer type. Immutable after construction; pre_tokenizer(type) shares one
// instance per type.
class PreTokenizer {
 public:
  struct Scratch {
    std::vector<std::uint32_t> ends, next, units;
    Regex::Scratch regex;
  };

  explicit PreTokenizer(BpePre pre) {
    const std::vector<std::string_view> exprs = pre_regex::of(pre);
    ES_CHECK(!exprs.empty(), "pre-tokenizer: no regexes for this type");
    for (const std::string_view r : exprs) {
      Stage st;
      if (r == pre_regex::gpt2) st.kind = Stage::Gpt2;
      else if (r == pre_regex::llama3) st.kind = Stage::Llama3;
      else if (r == pre_regex::qwen2) st.kind = Stage::Qwen2;
      else st.regex = std::make_unique<Regex>(r);
      stages_.push_back(std::move(st));
    }
  }

  // Word ends (code point indices, increasing, the last = t.size()) into s.ends; empty for empty text.
  void split(const CptText& t, Scratch& s) const {
    s.ends.clear();
    if (t.size() == 0) return;
    s.ends.push_back(t.size());
    for (const Stage& st : stages_) {
      if (st.regex) fill_units(t, st.regex->view(), s.units);
      s.next.clear();
      std::uint32_t b = 0;
      for (const std::uint32_t e : s.ends) {
        switch (st.kind) {
          case Stage::Gpt2: gpt2_split(t, b, e, s.next); break;
          case Stage::Llama3: llama3_split(t, b, e, s.next, 3); break;
          case Stage::Qwen2: llama3_split(t, b, e, s.next, 1); break;
          case Stage::Generic: st.regex->split(s.units.data(), b, e, s.next, s.regex); break;
        }
        b = e;
      }
      s.ends.swap(s.next);
    }
  }

 private:
  struct Stage {
    enum Kind { Generic, Gpt2, Llama3, Qwen2 } kind = Generic;
    std::unique_ptr<Regex> regex;
  };

  // The text as std::regex sees it in llama.cpp (regex.hpp).
  static void fill_units(const CptText& t, Regex::View view, std::vector<std::uint32_t>& units) {
    units.resize(t.size());
    for (std::uint32_t i = 0; i < t.size(); ++i) {
      const std::uint32_t c = t.cp[i];
      const bool space = t.flags[i] & CptText::kSpaceFlag;
      if (c < 0x80) units[i] = c;
      else if (space) units[i] = kCollapsedSpace;
      else if (view == Regex::View::Wide) units[i] = c;
      else units[i] = kCollapsedByClass[t.flags[i] & 7u];
    }
  }

  std::vector<Stage> stages_;
};

[[nodiscard]] inline const PreTokenizer& pre_tokenizer(BpePre pre) {
  static const auto all = [] {
    std::array<std::unique_ptr<PreTokenizer>, kBpePreCount> a;
    for (std::size_t i = 0; i < a.size(); ++i)
      if (static_cast<BpePre>(i) != BpePre::Unsupported) a[i] = std::make_unique<PreTokenizer>(static_cast<BpePre>(i));
    return a;
  }();
  const auto i = static_cast<std::size_t>(pre);
  ES_CHECK(i < all.size() && all[i], "pre-tokenizer: unsupported type ", i);
  return *all[i];
}

// The words of `text` as UTF-8 strings (tests and tools; the encoder works on code point ranges).
[[nodiscard]] inline std::vector<std::string> pre_split_words(BpePre pre, std::string_view text) {
  CptText t;
  t.assign(text);
  PreTokenizer::Scratch s;
  pre_tokenizer(pre).split(t, s);
  std::vector<std::string> words;
  std::uint32_t b = 0;
  for (const std::uint32_t e : s.ends) {
    words.emplace_back();
    t.utf8(b, e, words.back());
    b = e;
  }
  return words;
}

}  // namespace edgespec::detail
