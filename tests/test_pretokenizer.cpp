// BPE pre-tokenizers, every type: the splitters (hand-written and detail::Regex) against llama.cpp's way of applying
// the regexes, piece for piece (tests/data/pretokenizer/splits.jsonl, written by generate.py there with Python's
// `regex` module; that data was checked against llama.cpp's unicode_regex_split), the regex engine's own rules,
// the names and their flags, and the llama3 pre-tokenizer end to end on a synthetic byte-level vocabulary.
#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
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

std::vector<std::string> split(BpePre pre, std::string_view text) { return edgespec::detail::pre_split_words(pre, text); }

// One regex alone over the whole text (no hand-written splitter).
std::vector<std::string> regex_split(std::string_view pattern, std::string_view text) {
  using edgespec::detail::CptText;
  const edgespec::detail::Regex re(pattern);
  CptText t;
  t.assign(text);
  std::vector<std::uint32_t> units(t.size()), ends;
  for (std::uint32_t i = 0; i < t.size(); ++i) {  // the view, as PreTokenizer::fill_units builds it
    const std::uint32_t c = t.cp[i];
    const bool space = t.flags[i] & CptText::kSpaceFlag;
    units[i] = c < 0x80 ? c
               : space  ? 0x0B
               : re.view() == edgespec::detail::Regex::View::Wide ? c
                                                                    : edgespec::detail::kCollapsedByClass[t.flags[i] & 7u];
  }
  edgespec::detail::Regex::Scratch scratch;
  if (t.size() > 0) re.split(units.data(), 0, t.size(), ends, scratch);
  std::vector<std::string> words;
  std::uint32_t b = 0;
  for (const std::uint32_t e : ends) {
    words.emplace_back();
    t.utf8(b, e, words.back());
    b = e;
  }
  return words;
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

TEST_CASE("pretokenizer: every type splits as llama.cpp does, piece for piece", "[tokenizer][pretokenizer]") {
  const auto& cases = split_cases();
  REQUIRE(cases.size() >= 14 * 380);
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
  CHECK(counts.size() == edgespec::detail::kBpePreCount - 1);  // every type but Unsupported
}

TEST_CASE("pretokenizer: hand-written splitters equal the regex engine on their regexes", "[tokenizer][pretokenizer]") {
  namespace rx = edgespec::detail::pre_regex;
  int n = 0;
  for (const SplitCase& c : split_cases()) {
    if (c.pre != "gpt-2") continue;  // each text once
    INFO("'" << c.text << "'");
    CHECK(regex_split(rx::gpt2, c.text) == split(BpePre::Gpt2, c.text));
    CHECK(regex_split(rx::llama3, c.text) == split(BpePre::Llama3, c.text));
    CHECK(regex_split(rx::qwen2, c.text) == split(BpePre::Qwen2, c.text));
    ++n;
  }
  CHECK(n >= 380);
}

TEST_CASE("pretokenizer: hand-checked splits", "[tokenizer][pretokenizer]") {
  using V = std::vector<std::string>;
  CHECK(split(BpePre::Llama3, "1234567") == V{"123", "456", "7"});
  CHECK(split(BpePre::Qwen2, "2024") == V{"2", "0", "2", "4"});
  CHECK(split(BpePre::Gpt2, "2024") == V{"2024"});
  CHECK(split(BpePre::Starcoder, "x 2024") == V{"x", " ", "2", "0", "2", "4"});  // \p{N} first, then GPT-2
  CHECK(split(BpePre::Default, "a+=12345") == V{"a", "+=", "123", "45"});
  CHECK(split(BpePre::Llama3, "I'M DON'T") == V{"I", "'M", " DON", "'T"});
  CHECK(split(BpePre::Gpt2, "I'M") == V{"I", "'", "M"});
  CHECK(split(BpePre::Gpt4o, "HELLO'S WorldWide") == V{"HELLO'S", " World", "Wide"});
  CHECK(split(BpePre::Tekken, "XMLHttpRequest") == V{"XMLHttp", "Request"});
  CHECK(split(BpePre::Llama3, "\tword(x)") == V{"\tword", "(x", ")"});
  CHECK(split(BpePre::Llama3, "a  \n\n  b") == V{"a", "  \n\n", " ", " b"});
  CHECK(split(BpePre::Llama3, "x!\r\n\r\ny") == V{"x", "!\r\n\r\n", "y"});
  CHECK(split(BpePre::Llama3, "a   ") == V{"a", "   "});
  CHECK(split(BpePre::Bloom, "Hello, world!") == V{"Hello", ",", " world", "!"});
  CHECK(split(BpePre::DeepseekLlm, "a  \nb  c") == V{"a", "  ", "\n", "b", " ", " c"});  // \s+$: a piece's end only
  // Later regexes cut the pieces of earlier ones again: the sentinel regex's piece loses its digits and brackets.
  CHECK(split(BpePre::Chameleon, "<sentinel:42>IMGIMGABZ") == V{"<", "sentinel", ":", "4", "2", ">", "IMGIMGABZ"});
  for (int p = 1; p < static_cast<int>(edgespec::detail::kBpePreCount); ++p) CHECK(split(static_cast<BpePre>(p), "").empty());
  // Malformed UTF-8: each bad byte is one U+FFFD, and the words are written from the code points, as llama.cpp
  // does: the bytes come back as EF BF BD.
  const std::string bad = "a\xff\xfe b\xC3 12\xE2\x96";
  const std::string fffd = "\xEF\xBF\xBD";
  for (int p = 1; p < static_cast<int>(edgespec::detail::kBpePreCount); ++p) {
    std::string joined;
    for (const auto& w : split(static_cast<BpePre>(p), bad)) joined += w;
    CHECK(joined == "a" + fffd + fffd + " b" + fffd + " 12" + fffd + fffd);
  }
}

TEST_CASE("pretokenizer: the regex engine reads regexes as std::regex does in llama.cpp", "[tokenizer][pretokenizer]") {
  using V = std::vector<std::string>;
  using edgespec::detail::Regex;
  // Collapsed view: \p{S} has llama.cpp's ASCII members, which lack '~'; a non-ASCII symbol is its class byte.
  CHECK(regex_split(R"(\p{S}+)", "a$+~€b") == V{"a", "$+", "~", "€", "b"});
  CHECK(regex_split(R"(\p{P}+)", "a!~b«»") == V{"a", "!", "~b", "«»"});
  CHECK(regex_split(R"(\p{M}+)", "e\u0301x") == V{"e", "\u0301", "x"});
  // \s is ASCII whitespace plus White_Space code points (as 0x0B); U+001F and U+200B are not \s.
  CHECK(regex_split(R"(\s+)", "a\u3000\u00a0b\x1f\u200b c") == V{"a", "\u3000\u00a0", "b\x1f\u200b", " ", "c"});
  // Wide view: literal code points and ranges; U+3000 is 0x0B there, so [　-。] does not see it.
  CHECK(regex_split("[\u3000-\u3002]+", "x\u3000\u3001\u3002y") == V{"x\u3000", "\u3001\u3002", "y"});
  // $ is the end of the piece only (no multiline, no "before a final newline").
  CHECK(regex_split(R"(\s+$)", "a \n b\n") == V{"a \n b", "\n"});
  // Leftmost start, then the first alternative that matches (not the longest).
  CHECK(regex_split("ab|abc", "abcabc") == V{"ab", "c", "ab", "c"});
  CHECK(regex_split("(?:a|ab)(?=c)", "abc") == V{"ab", "c"});  // backtracks into the group
  CHECK(regex_split("x{2,3}", "xxxxxxx") == V{"xxx", "xxx", "x"});
  CHECK(regex_split("[^a-z]+", "abcDEF\u00e9g") == V{"abc", "DEF\u00e9", "g"});  // wide: é is not in a-z
  CHECK(regex_split(R"([^a-z\p{N}]+)", "abcDEF\u00e9g") == V{"abc", "DEF\u00e9", "g"});  // collapsed: é is 0xD2
  // Refused: syntax std::regex has but the pre-tokenizers do not use, and what would loop or be ambiguous.
  for (const char* bad : {"a*?", "(a)\\1", "a.b", "^a", "(?<=a)b", "a**", "(a*)*", "x?", "[b-a]", "(ab", "ab)",
                          "\\p{Lu}", "\\p{L}é", "\\w+", "a{3,2}"}) {
    INFO(bad);
    CHECK_THROWS_AS(Regex(bad), edgespec::Error);
  }
}

TEST_CASE("pretokenizer: long runs stay linear", "[tokenizer][pretokenizer]") {
  // deepseek-llm's \s+$ over 200000 spaces that do not reach the piece's end: every start fails after running to
  // the '1', which is quadratic without the regex engine's memo of failed states.
  const std::string spaces(200000, ' ');
  const auto t0 = std::chrono::steady_clock::now();
  CHECK(split(BpePre::DeepseekLlm, spaces + "1") == std::vector<std::string>{spaces, "1"});
  CHECK(split(BpePre::Tekken, spaces + "x") == std::vector<std::string>{spaces.substr(1), " x"});
  CHECK(split(BpePre::Bloom, std::string(200000, 'a') + ".") == std::vector<std::string>{std::string(200000, 'a'), "."});
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("pretokenizer: 3 runs of 200000 code points split in %.3f s\n", s);
  CHECK(s < 10.0);
}

TEST_CASE("pretokenizer: names map as in llama.cpp, with their flags", "[tokenizer][pretokenizer]") {
  using edgespec::detail::bpe_pre_from_name;
  using edgespec::detail::find_pre_tokenizer;
  for (const char* p : {"llama3", "llama-v3", "llama-bpe", "falcon3", "dbrx", "smaug-bpe", "chatglm-bpe"})
    CHECK(bpe_pre_from_name(p) == BpePre::Llama3);
  for (const char* p : {"qwen2", "deepseek-r1-qwen", "megrez", "stablelm2"}) CHECK(bpe_pre_from_name(p) == BpePre::Qwen2);
  for (const char* p : {"gpt-2", "phi-2", "olmo", "mpt", "jais", "roberta-bpe"}) CHECK(bpe_pre_from_name(p) == BpePre::Gpt2);
  for (const char* p : {"starcoder", "refact", "command-r", "smollm", "codeshell", "exaone", "minerva-7b"})
    CHECK(bpe_pre_from_name(p) == BpePre::Starcoder);
  for (const char* p : {"poro-chat", "bloom", "gpt3-finnish"}) CHECK(bpe_pre_from_name(p) == BpePre::Bloom);
  CHECK(bpe_pre_from_name("") == BpePre::Default);
  CHECK(bpe_pre_from_name("default") == BpePre::Default);
  CHECK(bpe_pre_from_name("deepseek-llm") == BpePre::DeepseekLlm);
  CHECK(bpe_pre_from_name("deepseek-coder") == BpePre::DeepseekCoder);
  CHECK(bpe_pre_from_name("deepseek-v3") == BpePre::Deepseek3);
  CHECK(bpe_pre_from_name("falcon") == BpePre::Falcon);
  CHECK(bpe_pre_from_name("viking") == BpePre::Viking);
  CHECK(bpe_pre_from_name("tekken") == BpePre::Tekken);
  CHECK(bpe_pre_from_name("chameleon") == BpePre::Chameleon);
  CHECK(bpe_pre_from_name("gpt-4o") == BpePre::Gpt4o);
  for (const char* p : {"LLAMA-BPE", "poro", "chatglm4", "minerva", "smaug", "qwen3-coder"})
    CHECK(bpe_pre_from_name(p) == BpePre::Unsupported);
  // llama.cpp's flags: ignore_merges and add_bos for the Llama 3 group and tekken, add_bos for chameleon,
  // clean_spaces off for the types that turn it off, no default BOS for chatglm-bpe.
  CHECK((find_pre_tokenizer("llama-bpe")->ignore_merges && find_pre_tokenizer("llama-bpe")->add_bos));
  CHECK((find_pre_tokenizer("tekken")->ignore_merges && find_pre_tokenizer("tekken")->add_bos));
  CHECK((!find_pre_tokenizer("dbrx")->ignore_merges && !find_pre_tokenizer("dbrx")->add_bos));
  CHECK((find_pre_tokenizer("chameleon")->add_bos && !find_pre_tokenizer("chameleon")->ignore_merges));
  for (const char* p : {"smollm", "qwen2", "deepseek-llm", "command-r", "tekken", "poro-chat", "viking", "chameleon"})
    CHECK(!find_pre_tokenizer(p)->clean_spaces);
  for (const char* p : {"gpt-2", "starcoder", "megrez", "stablelm2", "falcon", "default", "llama-bpe"})
    CHECK(find_pre_tokenizer(p)->clean_spaces);
  CHECK(find_pre_tokenizer("chatglm-bpe")->no_bos);

  // Every name builds a Tokenizer; an unknown one is refused with the name and the supported list.
  for (const auto& n : edgespec::detail::kPreTokenizerNames) {
    INFO(n.name);
    CHECK_NOTHROW(Tokenizer(tiny_vocab(std::string(n.name).c_str())));
  }
  CHECK_NOTHROW(Tokenizer(tiny_vocab("")));  // llama.cpp: a missing tokenizer.ggml.pre is "default"
  try {
    (void)Tokenizer(tiny_vocab("qwen3-coder"));
    FAIL("unsupported pre-tokenizer accepted");
  } catch (const edgespec::Error& e) {
    const std::string msg = e.what();
    CHECK(msg.find("'qwen3-coder'") != std::string::npos);
    CHECK(msg.find("'smollm'") != std::string::npos);
    CHECK(msg.find("'deepseek-llm'") != std::string::npos);
  }
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
      std::size_t end = 0;
      for (const auto& w : split(pre, t)) word_ends.push_back(end += w.size());
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

TEST_CASE("pretokenizer: GGUF defaults follow llama.cpp per pre-tokenizer", "[tokenizer][pretokenizer]") {
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
  CHECK(load("tekken", -1).add_bos);
  CHECK(load("chameleon", -1).add_bos);
  CHECK(!load("qwen2", -1).add_bos);
  CHECK(!load("gpt-2", -1).add_bos);
  CHECK(!load("qwen2", -1).clean_spaces);
  CHECK(load("gpt-2", -1).clean_spaces);
  CHECK(load("chatglm-bpe", -1).bos == 256);  // the key sets it
  const Vocab v = load("llama-bpe", -1);
  CHECK(v.pre == "llama-bpe");
  CHECK(Tokenizer(v).encode("abc", true) == std::vector<std::int32_t>{256, 257});
  CHECK(Tokenizer(load("gpt-2", -1)).encode("abc", true) == std::vector<std::int32_t>{256, 99});  // no BOS: add_bos is off
}
