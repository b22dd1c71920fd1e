// BPE pre-tokenizers (gpt-2, llama3, qwen2): the hand-written splitters against the regexes themselves, piece for
// piece (tests/data/pretokenizer/splits.jsonl, written by generate.py there with Python's `regex` module), and the
// llama3 pre-tokenizer end to end on a synthetic byte-level vocabulary.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include <unistd.h>

#include "edgespec/io/gguf_export.hpp"
#include "edgespec/io/gguf_writer.hpp"
#include "edgespec/tokenizer/tokenizer.hpp"

#ifndef EDGESPEC_TEST_DATA_DIR
#error "EDGESPEC_TEST_DATA_DIR (tests/data) must be defined by the build"
#endif

using edgespec::Tokenizer;
using edgespec::Vocab;
using edgespec::detail::BpePre;
namespace fs = std::filesystem;

namespace {

struct SplitCase {
  std::string pre, text;
  std::vector<std::string> pieces;
};

// Just enough JSON for generate.py's lines: ["pre", "text", ["piece", ...]] written with ensure_ascii=False, so
// only control characters, '"' and '\\' are escaped (no surrogate pairs).
class JsonLine {
 public:
  explicit JsonLine(std::string_view s) : s_(s) {}
  void expect(char c) {
    skip_ws();
    REQUIRE(p_ < s_.size());
    REQUIRE(s_[p_] == c);
    ++p_;
  }
  bool peek(char c) {
    skip_ws();
    return p_ < s_.size() && s_[p_] == c;
  }
  std::string string() {
    expect('"');
    std::string out;
    while (true) {
      REQUIRE(p_ < s_.size());
      const char c = s_[p_++];
      if (c == '"') return out;
      if (c != '\\') {
        out += c;
        continue;
      }
      REQUIRE(p_ < s_.size());
      switch (const char e = s_[p_++]) {
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'u': {
          REQUIRE(p_ + 4 <= s_.size());
          const auto cp = static_cast<std::uint32_t>(std::stoul(std::string(s_.substr(p_, 4)), nullptr, 16));
          p_ += 4;
          REQUIRE((cp < 0xD800 || cp > 0xDFFF));
          edgespec::detail::append_utf8(out, cp);
          break;
        }
        default: out += e;  // '"', '\\', '/'
      }
    }
  }

 private:
  void skip_ws() {
    while (p_ < s_.size() && (s_[p_] == ' ' || s_[p_] == '\t')) ++p_;
  }
  std::string_view s_;
  std::size_t p_ = 0;
};

const std::vector<SplitCase>& split_cases() {
  static const std::vector<SplitCase> cases = [] {
    const fs::path path = fs::path(EDGESPEC_TEST_DATA_DIR) / "pretokenizer" / "splits.jsonl";
    std::ifstream in(path, std::ios::binary);
    INFO(path.string());
    REQUIRE(in.good());
    std::vector<SplitCase> out;
    for (std::string line; std::getline(in, line);) {
      if (line.empty()) continue;
      JsonLine j(line);
      SplitCase c;
      j.expect('[');
      c.pre = j.string();
      j.expect(',');
      c.text = j.string();
      j.expect(',');
      j.expect('[');
      while (!j.peek(']')) {
        if (!c.pieces.empty()) j.expect(',');
        c.pieces.push_back(j.string());
      }
      j.expect(']');
      j.expect(']');
      out.push_back(std::move(c));
    }
    return out;
  }();
  return cases;
}

std::vector<std::string> split(BpePre pre, std::string_view text) {
  std::vector<std::string> pieces;
  for (const auto& [b0, b1] : edgespec::detail::pre_split(pre, text)) pieces.emplace_back(text.substr(b0, b1 - b0));
  return pieces;
}

// The text of each token, so token boundaries can be compared with word boundaries.
std::vector<std::string> pieces_of(const Tokenizer& tok, const std::vector<std::int32_t>& ids) {
  std::vector<std::string> out;
  for (const std::int32_t id : ids) out.push_back(tok.token_to_piece(id));
  return out;
}

Vocab synth_vocab(const char* pre) {
  Vocab v = edgespec::make_synth_gpt2_vocab(3000);
  v.pre = pre;
  return v;
}

// 256 byte tokens, "ab" (merge "a b"), "abc" (no merge makes it), and "1" "2" "3" merged up to "123" and "1234".
Vocab tiny_vocab(const char* pre) {
  const edgespec::detail::ByteAlphabet& alpha = edgespec::detail::byte_alphabet();
  Vocab v;
  v.kind = Vocab::Kind::Gpt2;
  v.pre = pre;
  v.unk = v.pad = -1;
  v.add_bos = false, v.add_space_prefix = false;
  for (int b = 0; b < 256; ++b) v.tokens.push_back(alpha.to_utf8[static_cast<std::size_t>(b)]);
  for (const char* t : {"ab", "abc", "12", "123", "1234"}) v.tokens.emplace_back(t);
  v.merges = {"a b", "1 2", "12 3", "123 4"};
  v.bos = v.eos = -1;
  v.types.assign(v.tokens.size(), edgespec::token_type::normal);
  v.scores.assign(v.tokens.size(), 0.0f);
  return v;
}

struct TempFile {
  fs::path path;
  explicit TempFile(const std::string& name)
      : path(fs::temp_directory_path() / ("edgespec_pretok_" + std::to_string(::getpid()) + "_" + name)) {}
  ~TempFile() {
    std::error_code ec;
    fs::remove(path, ec);
  }
};

}  // namespace

TEST_CASE("pretokenizer: splits match the regexes piece for piece", "[tokenizer][pretokenizer]") {
  const auto& cases = split_cases();
  REQUIRE(cases.size() >= 300);
  std::map<std::string, std::pair<int, int>> counts;  // pre -> (pass, total)
  for (const SplitCase& c : cases) {
    const BpePre pre = edgespec::detail::bpe_pre_from_name(c.pre);
    REQUIRE(pre != BpePre::Unsupported);
    INFO(c.pre << ": '" << c.text << "'");
    const auto got = split(pre, c.text);
    CHECK(got == c.pieces);
    counts[c.pre].first += got == c.pieces;
    ++counts[c.pre].second;
  }
  for (const auto& [pre, n] : counts) std::printf("pretokenizer %s: %d/%d splits match\n", pre.c_str(), n.first, n.second);
  CHECK(counts.size() == 3);
}

TEST_CASE("pretokenizer: hand-checked splits", "[tokenizer][pretokenizer]") {
  using V = std::vector<std::string>;
  CHECK(split(BpePre::Llama3, "1234567") == V{"123", "456", "7"});
  CHECK(split(BpePre::Qwen2, "2024") == V{"2", "0", "2", "4"});
  CHECK(split(BpePre::Gpt2, "2024") == V{"2024"});
  CHECK(split(BpePre::Llama3, "I'M DON'T") == V{"I", "'M", " DON", "'T"});
  CHECK(split(BpePre::Gpt2, "I'M") == V{"I", "'", "M"});
  CHECK(split(BpePre::Llama3, "\tword(x)") == V{"\tword", "(x", ")"});
  CHECK(split(BpePre::Llama3, "a  \n\n  b") == V{"a", "  \n\n", " ", " b"});
  CHECK(split(BpePre::Llama3, "x!\r\n\r\ny") == V{"x", "!\r\n\r\n", "y"});
  CHECK(split(BpePre::Llama3, "a   ") == V{"a", "   "});
  CHECK(split(BpePre::Llama3, "").empty());
  // Malformed UTF-8: each bad byte is one U+FFFD "other" code point, and the pieces still cover the text.
  const std::string bad = "a\xff\xfe b\xC3 12\xE2\x96";
  std::string joined;
  for (const auto& p : split(BpePre::Llama3, bad)) joined += p;
  CHECK(joined == bad);
}

TEST_CASE("pretokenizer: names map as in llama.cpp", "[tokenizer][pretokenizer]") {
  using edgespec::detail::bpe_pre_from_name;
  for (const char* p : {"llama3", "llama-v3", "llama-bpe", "falcon3", "dbrx", "smaug-bpe"})
    CHECK(bpe_pre_from_name(p) == BpePre::Llama3);
  for (const char* p : {"qwen2", "deepseek-r1-qwen", "megrez", "stablelm2"}) CHECK(bpe_pre_from_name(p) == BpePre::Qwen2);
  for (const char* p : {"gpt-2", "phi-2", "olmo"}) CHECK(bpe_pre_from_name(p) == BpePre::Gpt2);
  for (const char* p : {"", "default", "deepseek-coder", "tekken", "gpt-4o", "LLAMA-BPE"})
    CHECK(bpe_pre_from_name(p) == BpePre::Unsupported);

  Vocab v = tiny_vocab("deepseek-coder");
  try {
    (void)Tokenizer(v);
    FAIL("unsupported pre-tokenizer accepted");
  } catch (const edgespec::Error& e) {
    CHECK(std::string(e.what()).find("'deepseek-coder'") != std::string::npos);
  }
  v.pre = "";
  CHECK_THROWS_AS(Tokenizer(v), edgespec::Error);
}

TEST_CASE("pretokenizer: llama-bpe end to end on a synthetic vocabulary", "[tokenizer][pretokenizer]") {
  const Tokenizer llama3(synth_vocab("llama-bpe"));
  const Tokenizer qwen2(synth_vocab("qwen2"));
  std::vector<std::string> texts = {"Call 1234567 or 9876543210 now, I'M SURE it's 3.14159!",
                                    "12345678901234567890", "Digits: 1 22 333 4444 55555\r\n\r\n\ttabbed"};
  for (const SplitCase& c : split_cases())
    if (c.pre == "llama3") texts.push_back(c.text);
  int n = 0;
  for (const auto& t : texts) {
    INFO("'" << t << "'");
    for (const Tokenizer* tok : {&llama3, &qwen2}) {
      const auto ids = tok->encode(t, false);
      CHECK(tok->decode(ids) == t);
      // No token crosses a word boundary of the pre-tokenizer.
      const BpePre pre = tok == &llama3 ? BpePre::Llama3 : BpePre::Qwen2;
      std::vector<std::size_t> word_ends, token_ends;
      for (const auto& [b0, b1] : edgespec::detail::pre_split(pre, t)) word_ends.push_back(b1);
      std::size_t at = 0;
      for (const auto& p : pieces_of(*tok, ids)) token_ends.push_back(at += p.size());
      for (const std::size_t e : word_ends)
        CHECK(std::find(token_ends.begin(), token_ends.end(), e) != token_ends.end());
      // Digit runs in one token: at most 3 (llama3) or 1 (qwen2).
      for (const auto& p : pieces_of(*tok, ids)) {
        std::size_t run = 0, longest = 0;
        for (const char ch : p) longest = std::max(longest, run = ch >= '0' && ch <= '9' ? run + 1 : 0);
        CHECK(longest <= (pre == BpePre::Llama3 ? 3u : 1u));
      }
    }
    ++n;
  }
  std::printf("pretokenizer: %d texts round-trip through llama-bpe and qwen2 synthetic vocabularies\n", n);

  // "1234567" -> words "123" "456" "7": the tokens end at bytes 3, 6 and 7.
  std::vector<std::size_t> ends;
  std::size_t at = 0;
  for (const auto& p : pieces_of(llama3, llama3.encode("1234567", false))) ends.push_back(at += p.size());
  CHECK(std::find(ends.begin(), ends.end(), 3u) != ends.end());
  CHECK(std::find(ends.begin(), ends.end(), 6u) != ends.end());
  CHECK(ends.back() == 7u);
}

TEST_CASE("pretokenizer: llama3 ignores merges for words that are tokens", "[tokenizer][pretokenizer]") {
  const Tokenizer llama3(tiny_vocab("llama-bpe")), dbrx(tiny_vocab("dbrx")), gpt2(tiny_vocab("gpt-2"));
  const std::int32_t ab = 256, abc = 257, t123 = 259, t1234 = 260;
  const auto id_of = [&](const Tokenizer& t, std::string_view s) {
    for (std::int32_t i = 0; i < t.vocab().size(); ++i)
      if (t.token_to_piece(i) == s) return i;
    return -1;
  };
  // llama.cpp's LLAMA3 group: the word "abc" is a token, so it is emitted whole though no merge makes it.
  CHECK(llama3.encode("abc", false) == std::vector<std::int32_t>{abc});
  // dbrx shares the regex but not ignore_merges; gpt-2 neither: BPE gives "ab" + "c".
  CHECK(dbrx.encode("abc", false) == std::vector<std::int32_t>{ab, id_of(dbrx, "c")});
  CHECK(gpt2.encode("abc", false) == std::vector<std::int32_t>{ab, id_of(gpt2, "c")});
  // Digits: llama3 words are at most 3 digits, so "1234" is never produced; gpt-2 keeps the run whole.
  CHECK(llama3.encode("1234", false) == std::vector<std::int32_t>{t123, id_of(llama3, "4")});
  CHECK(gpt2.encode("1234", false) == std::vector<std::int32_t>{t1234});
}

TEST_CASE("pretokenizer: GGUF add_bos default follows llama.cpp for llama-bpe", "[tokenizer][pretokenizer]") {
  TempFile tmp("vocab.gguf");
  const Vocab base = tiny_vocab("llama-bpe");
  const auto load = [&](const char* pre, int add_bos) {
    edgespec::GgufWriter w;
    w.set_string("general.architecture", "llama");
    w.set_string("tokenizer.ggml.model", "gpt2");
    w.set_string("tokenizer.ggml.pre", pre);
    w.set_strings("tokenizer.ggml.tokens", base.tokens);
    w.set_i32s("tokenizer.ggml.token_type", base.types);
    w.set_strings("tokenizer.ggml.merges", base.merges);
    w.set_u32("tokenizer.ggml.bos_token_id", 256);
    if (add_bos >= 0) w.set_bool("tokenizer.ggml.add_bos_token", add_bos == 1);
    w.write(tmp.path.string());
    return edgespec::vocab_from_gguf(edgespec::GgufFile(tmp.path.string()));
  };
  CHECK(load("llama-bpe", -1).add_bos);   // llama.cpp: LLAMA3 group sets add_bos
  CHECK(!load("llama-bpe", 0).add_bos);   // the key wins
  CHECK(!load("qwen2", -1).add_bos);
  CHECK(!load("gpt-2", -1).add_bos);
  const Vocab v = load("llama-bpe", -1);
  CHECK(v.pre == "llama-bpe");
  CHECK(Tokenizer(v).encode("abc", v.add_bos) == std::vector<std::int32_t>{256, 257});
}
