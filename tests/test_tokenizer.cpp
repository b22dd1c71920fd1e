// Tokenizer: llama.cpp's own test vectors (every case, every vocabulary), the golden prompt tokens of the reference
// models through both vocabulary sources, special tokens and flags as llama_tokenize has them, end-of-generation
// tokens, round trips, and malformed inputs.
#include <catch2/catch.hpp>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include <unistd.h>

#include "edgespec/io/gguf_writer.hpp"
#include "edgespec/tokenizer/tokenizer.hpp"
#include "test_util.hpp"

using edgespec::Tokenizer;
using edgespec::Vocab;
namespace fs = std::filesystem;

namespace {

std::string read_all(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  REQUIRE(f.good());
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// llama.cpp tests/test-tokenizer-0.cpp: cases are separated by "\n__ggml_vocab_test__\n"; the text after the last
// separator (empty in these files) is not a case.
std::vector<std::string> split_cases(const std::string& raw) {
  const std::string sep = "\n__ggml_vocab_test__\n";
  std::vector<std::string> cases;
  std::size_t pos = 0;
  while (pos < raw.size()) {
    const std::size_t next = raw.find(sep, pos);
    if (next == std::string::npos) break;
    cases.push_back(raw.substr(pos, next - pos));
    pos = next + sep.size();
  }
  return cases;
}

std::vector<std::vector<std::int32_t>> parse_out(const std::string& raw) {
  std::vector<std::vector<std::int32_t>> rows;
  std::istringstream in(raw);
  for (std::string line; std::getline(in, line);) {
    std::istringstream ls(line);
    std::vector<std::int32_t> ids;
    for (std::int32_t id; ls >> id;) ids.push_back(id);
    rows.push_back(std::move(ids));
  }
  return rows;
}

const Tokenizer& gguf_tokenizer(const std::string& rel) {
  static std::map<std::string, Tokenizer> cache;
  auto it = cache.find(rel);
  if (it == cache.end())
    it = cache.emplace(rel, Tokenizer(edgespec::vocab_from_gguf(edgespec::GgufFile(edgespec::test::model_path(rel)))))
             .first;
  return it->second;
}

const Tokenizer& tok512() {
  static const Tokenizer t(edgespec::load_llama2c_tokenizer(edgespec::test::model_path("llama2c/tok512.bin"), 512));
  return t;
}

// `vectors` names the .inp/.out pair when it is not `rel` itself (smollm2.inp belongs to a model file).
void check_vocab_test_file(const std::string& rel, const std::string& vectors = "") {
  const Tokenizer& tok = gguf_tokenizer(rel);
  const std::string base = vectors.empty() ? rel : vectors;
  const auto cases = split_cases(read_all(edgespec::test::model_path(base + ".inp")));
  const auto expected = parse_out(read_all(edgespec::test::model_path(base + ".out")));
  REQUIRE(cases.size() == 46);
  REQUIRE(expected.size() == cases.size());
  std::size_t pass = 0;
  for (std::size_t i = 0; i < cases.size(); ++i) {
    INFO(rel << " case " << i << ": '" << cases[i] << "'");
    const auto ids = tok.encode(cases[i], false);
    CHECK(ids == expected[i]);
    pass += ids == expected[i];
  }
  std::printf("%s: %zu/%zu llama.cpp test cases match\n", base.c_str(), pass, cases.size());
}

const char* const kSmolLM2 = "gguf/smollm2-135m-instruct-q4_1.gguf";

// Minimal reader for the golden .jsonl: the string value of "prompt" and the integer array "prompt_tokens".
std::string json_string(const std::string& line, const std::string& key) {
  std::size_t p = line.find("\"" + key + "\"");
  REQUIRE(p != std::string::npos);
  p = line.find('"', line.find(':', p) + 1) + 1;
  std::string out;
  while (line[p] != '"') {
    char c = line[p++];
    if (c != '\\') {
      out += c;
      continue;
    }
    c = line[p++];
    switch (c) {
      case 'n': out += '\n'; break;
      case 't': out += '\t'; break;
      case 'r': out += '\r'; break;
      case 'u': {
        const auto cp = static_cast<std::uint32_t>(std::stoul(line.substr(p, 4), nullptr, 16));
        p += 4;
        REQUIRE((cp < 0xD800 || cp > 0xDFFF));  // surrogate pairs do not occur in these files
        edgespec::detail::append_utf8(out, cp);
        break;
      }
      default: out += c;
    }
  }
  return out;
}
std::vector<std::int32_t> json_ints(const std::string& line, const std::string& key) {
  std::size_t p = line.find("\"" + key + "\"");
  REQUIRE(p != std::string::npos);
  p = line.find('[', p) + 1;
  const std::size_t e = line.find(']', p);
  std::vector<std::int32_t> ids;
  std::istringstream in(line.substr(p, e - p));
  for (std::string item; std::getline(in, item, ',');) ids.push_back(std::stoi(item));
  return ids;
}

struct TempFile {
  fs::path path;
  explicit TempFile(const std::string& name)
      : path(fs::temp_directory_path() / ("edgespec_tok_" + std::to_string(::getpid()) + "_" + name)) {}
  ~TempFile() {
    std::error_code ec;
    fs::remove(path, ec);
  }
  void write(const std::string& bytes) const {
    std::ofstream f(path, std::ios::binary);
    f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  }
};

template <class T>
void put(std::string& s, T v) {
  s.append(reinterpret_cast<const char*>(&v), sizeof v);
}

std::string llama2c_file(const std::vector<std::string>& tokens, std::int32_t max_len = 16) {
  std::string s;
  put<std::int32_t>(s, max_len);
  for (const auto& t : tokens) {
    put<float>(s, 0.0f);
    put<std::int32_t>(s, static_cast<std::int32_t>(t.size()));
    s += t;
  }
  return s;
}

}  // namespace

TEST_CASE("tokenizer: llama.cpp test vectors, llama SPM vocabulary", "[tokenizer]") {
  check_vocab_test_file("vocab/ggml-vocab-llama-spm.gguf");
}

TEST_CASE("tokenizer: llama.cpp test vectors, BPE vocabularies", "[tokenizer]") {
  for (const char* v : {"gpt-2", "deepseek-llm", "falcon", "mpt", "starcoder"})
    check_vocab_test_file(std::string("vocab/ggml-vocab-") + v + ".gguf");
  check_vocab_test_file(kSmolLM2, "vocab/smollm2");
}

TEST_CASE("tokenizer: golden prompt tokens via tokenizer.bin and via the GGUF vocabulary", "[tokenizer]") {
  const Tokenizer& from_bin = tok512();
  const Tokenizer& from_gguf = gguf_tokenizer("gguf/stories260K-f32.gguf");
  REQUIRE(from_bin.vocab().tokens == from_gguf.vocab().tokens);
  REQUIRE(from_bin.vocab().scores == from_gguf.vocab().scores);
  REQUIRE(from_bin.vocab().types == from_gguf.vocab().types);
  int n = 0;
  for (const char* file : {"stories260K-greedy.jsonl", "llama2xs-greedy.jsonl"}) {
    std::ifstream in(edgespec::test::golden_dir() / file);
    REQUIRE(in.good());
    for (std::string line; std::getline(in, line);) {
      if (line.empty()) continue;
      const std::string prompt = json_string(line, "prompt");
      const auto expected = json_ints(line, "prompt_tokens");
      INFO(file << ": '" << prompt << "'");
      CHECK(from_bin.encode(prompt, true) == expected);
      CHECK(from_gguf.encode(prompt, true) == expected);
      CHECK(from_bin.decode(expected) == prompt);
      ++n;
    }
  }
  CHECK(n == 16);
}

TEST_CASE("tokenizer: decode(encode(x)) == x", "[tokenizer]") {
  const std::vector<std::string> texts = {
      "",
      " ",
      "  leading and trailing  ",
      "Hello world",
      "\n\n\tTabs\tand\nnewlines\r\n",
      "Once upon a time, there was a little girl named Lily.",
      "Führer ½ naïve café — “quotes” ‘single’ …",
      "нещо на Български",
      "日本語のテキストと中文字符",
      "🦙 llamas 🚀🚀 👩‍👩‍👧 emoji ✅",
      "ខ្មែរ ภาษาไทย العربية עברית",
      "math: ∑x² ≤ ∞, 3.14159, 1e-9, 0x7FFF",
      "code: for (int i = 0; i < n; ++i) { x[i] += y[i] * 2; }",
      "'s 't 're 've 'm 'll 'd I'm you're we've",
      "<s> </s> <unk> <0x0A> are plain text here",
      std::string("nul\0byte", 8),
      "\x01\x02\x1f\x7f controls",
      "   \u3000\u00a0 unicode spaces \u2003",
  };
  std::vector<const Tokenizer*> toks = {&gguf_tokenizer("vocab/ggml-vocab-llama-spm.gguf"),
                                        &gguf_tokenizer("vocab/ggml-vocab-gpt-2.gguf"), &tok512()};
  for (const Tokenizer* tok : toks) {
    for (const auto& t : texts) {
      for (const bool bos : {false, true}) {
        INFO("vocab size " << tok->vocab().size() << ", bos " << bos << ": '" << t << "'");
        const auto ids = tok->encode(t, bos);
        if (bos && tok->vocab().add_bos) REQUIRE((!ids.empty() && ids[0] == tok->bos()));
        if (!tok->vocab().add_bos) CHECK(ids == tok->encode(t, false));
        CHECK(tok->decode(ids) == t);
      }
    }
  }
  // Invalid UTF-8: SPM keeps it through byte fallback; byte-level BPE, like llama.cpp, reads each bad byte as
  // U+FFFD and encodes that code point, so the text comes back with EF BF BD in place of each bad byte.
  const std::string invalid = "bad\xff\xfe-bytes,\xC3-and-\xE2\x96-cut \xF0\x9F\xA6";
  CHECK(toks[0]->decode(toks[0]->encode(invalid, true)) == invalid);
  CHECK(toks[2]->decode(toks[2]->encode(invalid, true)) == invalid);
  const std::string r = "\xEF\xBF\xBD";
  CHECK(toks[1]->decode(toks[1]->encode(invalid, true)) ==
        "bad" + r + r + "-bytes," + r + "-and-" + r + r + "-cut " + r + r + r);
  const std::string spaced = "bad \xff\xfe bytes \xC3 and \xE2\x96 cut \xF0\x9F\xA6";
  CHECK(toks[1]->decode(toks[1]->encode(spaced, true)) ==
        "bad " + r + r + " bytes " + r + " and " + r + r + " cut " + r + r + r);

  // Known, llama.cpp-compatible losses for SPM: a literal U+2581 in the text reads back as ' ', and a malformed
  // lead byte takes the next bytes (here an escaped space) into one byte-fallback symbol.
  CHECK(toks[0]->decode(toks[0]->encode("a\xE2\x96\x81" "b", false)) == "a b");
  CHECK(toks[0]->decode(toks[0]->encode("\xF0 x", false)) == "\xF0\xE2\x96\x81x");
}

TEST_CASE("tokenizer: pieces and llama.cpp decoding conventions", "[tokenizer]") {
  const Tokenizer& spm = gguf_tokenizer("vocab/ggml-vocab-llama-spm.gguf");
  CHECK(spm.bos() == 1);
  CHECK(spm.eos() == 2);
  CHECK(spm.token_to_piece(1).empty());  // control
  CHECK(spm.token_to_piece(0).empty());  // unknown
  CHECK(spm.token_to_piece(13) == "\n");  // <0x0A>
  CHECK(spm.token_to_piece(15043) == " Hello");
  CHECK(spm.encode("", true) == std::vector<std::int32_t>{1});
  CHECK(spm.encode("", false).empty());
  CHECK(spm.encode("Hello", true) == std::vector<std::int32_t>{1, 15043});
  const std::vector<std::int32_t> hello = {1, 15043, 2787};
  CHECK(spm.decode(hello) == "Hello World");
  CHECK(spm.decode(std::span(hello).subspan(1)) == "Hello World");
  CHECK(spm.decode(std::span(hello).subspan(2)) == "World");  // leading space of the first piece dropped
  CHECK_THROWS_AS(spm.token_to_piece(32000), edgespec::Error);
  CHECK_THROWS_AS(spm.token_to_piece(-1), edgespec::Error);

  const Tokenizer& gpt2 = gguf_tokenizer("vocab/ggml-vocab-gpt-2.gguf");
  CHECK(gpt2.bos() == 50256);
  CHECK(gpt2.token_to_piece(18435) == " Hello");
  CHECK(gpt2.token_to_piece(198) == "\n");
  CHECK(gpt2.token_to_piece(50256).empty());  // <|endoftext|> is control
  CHECK(gpt2.decode(std::vector<std::int32_t>{18435, 995}) == " Hello world");  // no space prefix to drop
}

TEST_CASE("tokenizer: encode is not quadratic", "[tokenizer]") {
  std::string big;
  while (big.size() < 400000) big += "Once upon a time, 🦙 there was a naïve café with 12345 tokens.\n";
  for (const char* rel : {"vocab/ggml-vocab-llama-spm.gguf", "vocab/ggml-vocab-gpt-2.gguf"}) {
    const Tokenizer& tok = gguf_tokenizer(rel);
    const auto t0 = std::chrono::steady_clock::now();
    const auto ids = tok.encode(big, true);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("%s: encoded %zu bytes into %zu tokens in %.3f s\n", rel, big.size(), ids.size(), s);
    CHECK(tok.decode(ids) == big);
    // One long word (no pre-tokenizer split, no spaces) is the worst case for a rescanning merge loop.
    const std::string word(200000, 'a');
    const auto t1 = std::chrono::steady_clock::now();
    CHECK(tok.decode(tok.encode(word, false)) == word);
    CHECK(std::chrono::duration<double>(std::chrono::steady_clock::now() - t1).count() < 20.0);
  }
}

TEST_CASE("tokenizer: llama2.c tokenizer.bin with the 32000-token Llama 2 vocabulary", "[tokenizer]") {
  const Vocab v = edgespec::load_llama2c_tokenizer(edgespec::test::model_path("llama2c/tokenizer.bin"), 32000);
  const Vocab g = edgespec::vocab_from_gguf(edgespec::GgufFile(edgespec::test::model_path("vocab/ggml-vocab-llama-spm.gguf")));
  REQUIRE(v.size() == 32000);
  CHECK(v.tokens == g.tokens);
  CHECK(v.types == g.types);
  const Tokenizer a(v), b(g);
  for (const char* s : {"Hello world", " this is 🦙.cpp", "Führer ½ months", "\n\n\t x"})
    CHECK(a.encode(s, true) == b.encode(s, true));
}

TEST_CASE("tokenizer: malformed llama2.c tokenizer files throw edgespec::Error", "[tokenizer]") {
  const std::vector<std::string> good = {"<unk>", "\n<s>\n", "\n</s>\n", "<0x41>", " a", "b"};
  TempFile tmp("tok.bin");

  tmp.write(llama2c_file(good));
  const Vocab v = edgespec::load_llama2c_tokenizer(tmp.path.string(), 6);
  CHECK(v.tokens == std::vector<std::string>{"<unk>", "<s>", "</s>", "<0x41>", "\xE2\x96\x81" "a", "b"});
  CHECK(v.types == std::vector<std::int32_t>{2, 3, 3, 6, 1, 1});
  const Tokenizer tok(v);
  // '▁' alone has neither a token nor <0xXX> byte tokens: each of its 3 bytes falls back to <unk>
  CHECK(tok.encode("a b", true) == std::vector<std::int32_t>{1, 4, 0, 0, 0, 5});

  const auto throws = [&](const std::string& bytes, int n, const std::string& what) {
    tmp.write(bytes);
    INFO(what);
    CHECK_THROWS_AS(edgespec::load_llama2c_tokenizer(tmp.path.string(), n), edgespec::Error);
    try {
      (void)edgespec::load_llama2c_tokenizer(tmp.path.string(), n);
    } catch (const edgespec::Error& e) {
      CHECK(std::string(e.what()).find(tmp.path.string()) != std::string::npos);  // names the file
    }
  };
  const std::string full = llama2c_file(good);
  throws("", 6, "empty file");
  throws(full.substr(0, 2), 6, "truncated header");
  throws(full.substr(0, full.size() - 1), 6, "truncated last token");
  throws(full.substr(0, 4 + 8 + 5 + 3), 6, "truncated inside a record");
  throws(full, 7, "vocab_size larger than the file");
  throws(full, 5, "vocab_size smaller than the file");
  throws(full, 0, "vocab_size zero");
  throws(llama2c_file(good, -1), 6, "negative max_token_length");
  throws(llama2c_file(good, 2), 6, "token longer than max_token_length");
  std::string neg = llama2c_file({"<unk>"});
  neg.resize(neg.size() - 5 - 4);
  put<std::int32_t>(neg, -5);
  neg += "<unk>";
  throws(neg, 1, "negative token length");
  std::string huge = llama2c_file({"<unk>"});
  huge.resize(huge.size() - 5 - 4);
  put<std::int32_t>(huge, 0x7fffffff);
  throws(huge, 1, "token length past the end");
  CHECK_THROWS_AS(edgespec::load_llama2c_tokenizer("/nonexistent/tok.bin", 512), edgespec::Error);
}

TEST_CASE("tokenizer: GGUF vocabulary errors name the problem", "[tokenizer]") {
  TempFile tmp("vocab.gguf");
  const std::vector<std::string> tokens = {"<unk>", "<s>", "</s>", "a"};
  const auto write = [&](const std::string& model, std::size_t n_scores, std::size_t n_types) {
    edgespec::GgufWriter w;
    w.set_string("general.architecture", "llama");
    w.set_string("tokenizer.ggml.model", model);
    w.set_strings("tokenizer.ggml.tokens", tokens);
    const std::vector<float> scores(n_scores, 0.0f);
    const std::vector<std::int32_t> types(n_types, 1);
    w.set_f32s("tokenizer.ggml.scores", scores);
    w.set_i32s("tokenizer.ggml.token_type", types);
    w.write(tmp.path.string());
  };
  const auto message = [&]() -> std::string {
    try {
      (void)edgespec::vocab_from_gguf(edgespec::GgufFile(tmp.path.string()));
    } catch (const edgespec::Error& e) {
      return e.what();
    }
    return "";
  };
  write("llama", 4, 4);
  CHECK(message().empty());
  write("bert", 4, 4);
  CHECK(message().find("'bert'") != std::string::npos);
  write("llama", 3, 4);
  CHECK(message().find("tokenizer.ggml.scores") != std::string::npos);
  write("llama", 4, 5);
  CHECK(message().find("tokenizer.ggml.token_type") != std::string::npos);
  write("gpt2", 4, 4);
  CHECK(message().find("merges") != std::string::npos);

  Vocab v = gguf_tokenizer("vocab/ggml-vocab-gpt-2.gguf").vocab();
  v.pre = "qwen3-coder";  // not a name llama.cpp knows
  CHECK_THROWS_AS(Tokenizer(v), edgespec::Error);
  v.pre = "llama3";  // supported (tests/test_pretokenizer.cpp)
  CHECK_NOTHROW(Tokenizer(v));
  v.pre = "gpt-2";
  v.scores.pop_back();
  CHECK_THROWS_AS(Tokenizer(v), edgespec::Error);
}

TEST_CASE("tokenizer: end-of-generation sets of the llama.cpp vocabularies", "[tokenizer]") {
  // llama_vocab_is_eog over every id, from llama.cpp for these files.
  const std::vector<std::pair<std::string, std::vector<int>>> expected = {
      {"vocab/ggml-vocab-llama-spm.gguf", {2}},      {"vocab/ggml-vocab-gpt-2.gguf", {50256}},
      {"vocab/ggml-vocab-deepseek-llm.gguf", {100001}}, {"vocab/ggml-vocab-falcon.gguf", {11}},
      {"vocab/ggml-vocab-mpt.gguf", {0}},            {"vocab/ggml-vocab-starcoder.gguf", {0}},
      {kSmolLM2, {0, 2}}};
  for (const auto& [rel, eog] : expected) {
    INFO(rel);
    const Tokenizer& tok = gguf_tokenizer(rel);
    CHECK(tok.eog_ids() == eog);
    for (const int id : eog) CHECK(tok.is_eog(id));
  }
}

TEST_CASE("tokenizer: SmolLM2 flags, special tokens and end of generation as llama.cpp", "[tokenizer]") {
  const Tokenizer& tok = gguf_tokenizer(kSmolLM2);
  const Vocab& v = tok.vocab();
  CHECK(v.pre == "smollm");
  CHECK(!v.add_bos);  // tokenizer.ggml.add_bos_token = false
  CHECK(!v.add_eos);
  CHECK(!v.clean_spaces);  // llama.cpp turns it off for smollm
  CHECK(tok.encode("The capital of France is", true) == std::vector<std::int32_t>{504, 3575, 282, 4649, 314});
  CHECK(tok.encode("The capital of France is", false) == std::vector<std::int32_t>{504, 3575, 282, 4649, 314});

  // llama-tokenize -m smollm2 -p "<|im_start|>user\nHi<|im_end|>\n" (parse_special by default):
  const std::string chat = "<|im_start|>user\nHi<|im_end|>\n";
  CHECK(tok.encode(chat, true, true) == std::vector<std::int32_t>{1, 4093, 198, 26843, 2, 198});
  // ... and with --no-parse-special: the control tokens are plain text.
  CHECK(tok.encode(chat, true, false) ==
        std::vector<std::int32_t>{44, 108, 306, 79, 3738, 108, 46, 4093, 198, 26843, 44, 108, 306, 79, 486, 108, 46, 198});
  CHECK(tok.decode(tok.encode(chat, true, false)) == chat);
  CHECK(tok.decode(tok.encode(chat, true, true)) == "user\nHi\n");  // control tokens decode to ""
  CHECK(tok.decode(tok.encode(chat, true, true), /*special=*/true) == chat);
  CHECK(tok.token_to_piece(1).empty());
  CHECK(tok.token_to_piece(1, true) == "<|im_start|>");
  CHECK(tok.token_to_piece(198, true) == "\n");

  CHECK(tok.eos() == 2);
  CHECK(tok.is_eog(2));  // EOS = <|im_end|>
  CHECK(tok.is_eog(0));  // <|endoftext|>
  CHECK(!tok.is_eog(1));
  CHECK(!tok.is_eog(198));
  CHECK(!tok.is_eog(-1));
  CHECK(tok.eog_ids() == std::vector<int>{0, 2});
  CHECK(tok.eot() == 0);  // found by text: <|endoftext|> is the only EOT text SmolLM2 has besides <|im_end|> (2)
  CHECK(tok.token_id("<|im_end|>") == 2);
  CHECK(tok.token_id("<|im_start|>") == 1);
  CHECK(tok.token_id("Hi") == 26843);
  CHECK(!tok.token_id("<|not a token|>").has_value());
  CHECK(!tok.token_id("").has_value());
}

TEST_CASE("tokenizer: add_special, parse_special, lstrip/rstrip and EOG on small vocabularies", "[tokenizer]") {
  // SPM with an EOS to add and a user-defined token.
  Vocab spm = gguf_tokenizer("vocab/ggml-vocab-llama-spm.gguf").vocab();
  spm.add_eos = true;
  {
    const Tokenizer tok(spm);
    CHECK(tok.encode("Hello", true) == std::vector<std::int32_t>{1, 15043, 2});
    CHECK(tok.encode("Hello", false) == std::vector<std::int32_t>{15043});
    // parse_special: "</s>" in the text is EOS (control); without it, the characters.
    CHECK(tok.encode("Hello</s>", false, true) == std::vector<std::int32_t>{15043, 2});
    CHECK(tok.encode("Hello</s>", false, false) != std::vector<std::int32_t>{15043, 2});
    CHECK(tok.encode("<unk>", false, true) == std::vector<std::int32_t>{0});  // unknown tokens too
    // after a special token the next fragment gets the space prefix again
    CHECK(tok.encode("Hello</s>Hello", false, true) == std::vector<std::int32_t>{15043, 2, 15043});
    CHECK(tok.is_eog(2));
    CHECK(tok.eog_ids() == std::vector<int>{2});
    CHECK(tok.detokenize(std::vector<std::int32_t>{1, 15043, 2}, true) == " Hello");  // space kept after a BOS
    CHECK(tok.detokenize(std::vector<std::int32_t>{1, 15043, 2}, false, true) == "<s> Hello</s>");
  }
  spm.bos = -1;
  CHECK_THROWS_AS(Tokenizer(spm).encode("Hello", true), edgespec::Error);  // add_bos without a BOS token
  CHECK(Tokenizer(spm).encode("Hello", false) == std::vector<std::int32_t>{15043});

  // Phi-3 (by general.name): special tokens take the spaces after them, "</s>" too, "<s>" not.
  Vocab phi = gguf_tokenizer("vocab/ggml-vocab-llama-spm.gguf").vocab();
  phi.tokens.push_back("<|user|>");
  phi.types.push_back(edgespec::token_type::user_defined);
  phi.scores.push_back(0.0f);
  const std::int32_t user = phi.size() - 1;
  const std::vector<std::int32_t> plain = Tokenizer(phi).encode("<|user|>  Hi", false);
  CHECK(plain == std::vector<std::int32_t>{user, 259, 6324});  // "▁▁" "▁Hi": prefix and both spaces kept
  phi.name = "Phi-3-mini";
  const Tokenizer ptok(phi);
  CHECK(ptok.encode("<|user|>  Hi", false) == std::vector<std::int32_t>{user, 6324});
  CHECK(ptok.encode("</s>  Hi", false, true) == std::vector<std::int32_t>{2, 6324});
  CHECK(ptok.encode("<s>  Hi", false, true) != std::vector<std::int32_t>{1, 6324});

  // EOT and EOM from the file join the EOG set; texts in llama.cpp's list become control tokens.
  Vocab g = gguf_tokenizer("vocab/ggml-vocab-gpt-2.gguf").vocab();
  g.eot = 13;  // "."
  g.eos = 0;   // "!": <|endoftext|> (50256) stays EOG by its text
  g.tokens.push_back("<|im_end|>");
  g.types.push_back(edgespec::token_type::user_defined);
  g.scores.push_back(0.0f);
  const std::int32_t im_end = g.size() - 1;
  const Tokenizer gt(g);
  CHECK(gt.eog_ids() == std::vector<int>{0, 13, 50256, im_end});
  CHECK(gt.eot() == 13);
  // <|im_end|> is now control: plain text without parse_special, one token with it, "" as a piece.
  CHECK(gt.encode("a<|im_end|>", false, true) == std::vector<std::int32_t>{64, im_end});
  CHECK(gt.encode("a<|im_end|>", false, false).size() > 2);
  CHECK(gt.token_to_piece(im_end).empty());
  CHECK(gt.token_to_piece(im_end, true) == "<|im_end|>");
}

TEST_CASE("tokenizer: detokenize is llama_detokenize, clean_spaces included", "[tokenizer]") {
  const Tokenizer& gpt2 = gguf_tokenizer("vocab/ggml-vocab-gpt-2.gguf");
  REQUIRE(gpt2.vocab().clean_spaces);
  const auto ids = gpt2.encode("Hello , world ! it 's ' quoted ' I 'm we 're they 've I 'd you 'll .", false);
  CHECK(gpt2.decode(ids) == "Hello , world ! it 's ' quoted ' I 'm we 're they 've I 'd you 'll .");
  CHECK(gpt2.detokenize(ids) == "Hello, world! it's'quoted'I'm we're they've I 'd you 'll.");
  const Tokenizer& smol = gguf_tokenizer(kSmolLM2);  // clean_spaces off: as decode
  const auto sids = smol.encode("Hello , world !", false);
  CHECK(smol.detokenize(sids) == "Hello , world !");
  const Tokenizer& spm = gguf_tokenizer("vocab/ggml-vocab-llama-spm.gguf");
  const auto hid = spm.encode("Hello world", true);
  // llama.cpp strips the first piece only, which is BOS's empty one, and keeps the space after a removed BOS.
  CHECK(spm.detokenize(hid) == " Hello world");
  CHECK(spm.detokenize(hid, true) == " Hello world");
  CHECK(spm.detokenize(std::span(hid).subspan(1)) == "Hello world");
  CHECK(spm.decode(hid) == "Hello world");
}
