// The command-line contract: edgespec-generate --json (target-only and speculative), edgespec-tokenize,
// edgespec-synth, and clear errors with exit code 1. Runs the built tools from EDGESPEC_BIN_DIR.
#include <catch2/catch.hpp>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <regex>
#include <sys/wait.h>

#include "golden.hpp"

namespace {

struct Run {
  int status = -1;
  std::string out;  // stdout and stderr
};

std::string bin(const char* tool) {
  const char* dir = std::getenv("EDGESPEC_BIN_DIR");
  return (std::filesystem::path(dir != nullptr ? dir : "bin") / tool).string();
}

Run run(const std::string& cmd) {
  Run r;
  FILE* p = ::popen((cmd + " 2>&1").c_str(), "r");
  REQUIRE(p != nullptr);
  std::array<char, 4096> buf{};
  while (std::fgets(buf.data(), buf.size(), p) != nullptr) r.out += buf.data();
  const int st = ::pclose(p);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return r;
}

// A shell single-quoted word ('it'\''s').
std::string quote(const std::string& s) {
  std::string q = "'";
  for (const char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

std::vector<std::int32_t> all_ints(const std::string& text) {
  static const std::regex number("-?[0-9]+");
  std::vector<std::int32_t> v;
  for (std::sregex_iterator it(text.begin(), text.end(), number), e; it != e; ++it) v.push_back(std::stoi(it->str()));
  return v;
}

// The integers of a JSON array value `"key": [...]`.
std::vector<std::int32_t> json_ints(const std::string& json, const std::string& key) {
  const auto at = json.find("\"" + key + "\": [");
  REQUIRE(at != std::string::npos);
  const auto begin = json.find('[', at) + 1, end = json.find(']', begin);
  return all_ints(json.substr(begin, end - begin));
}

}  // namespace

using edgespec::test::model_path;

namespace {
const char* const kSmolLM2 = "gguf/smollm2-135m-instruct-q4_1.gguf";
}  // namespace

TEST_CASE("edgespec-generate --json reproduces the golden continuation, target-only and speculative", "[cli]") {
  const auto golden = edgespec::test::load_golden("stories260K-greedy.jsonl");
  const auto& g = golden.front();
  const std::string base = bin("edgespec-generate") + " --model " + model_path("llama2c/stories260K.bin") +
                           " --tokenizer " + model_path("llama2c/tok512.bin") + " --prompt " + quote(g.prompt) +
                           " -n 64 --json --threads 2";
  for (const std::string& extra : {std::string(), " --draft " + model_path("llama2c/llama2xs.bin") + " --draft-len 3",
                                  std::string(" --draft-skip 1,3 --draft-len 2"),
                                  std::string(" --draft-quant q8_0 --adaptive 1:8"),
                                  std::string(" --draft-ngram 3 --draft-len 4")}) {
    INFO("options:" << extra);
    const Run r = run(base + extra);
    REQUIRE(r.status == 0);
    CHECK(json_ints(r.out, "prompt_tokens") == g.prompt_tokens);
    CHECK(json_ints(r.out, "tokens") == g.greedy_tokens);
    for (const char* key : {"\"text\": ", "\"prefill_tokens_per_second\": ", "\"decode_tokens_per_second\": "})
      CHECK(r.out.find(key) != std::string::npos);
    if (!extra.empty())
      for (const char* key : {"\"rounds\": ", "\"drafted\": ", "\"accepted\": ", "\"alpha\": ", "\"acceptance_by_position\": ",
                              "\"tokens_per_round\": ", "\"draft_seconds\": ", "\"verify_seconds\": ", "\"sample_seconds\": "})
        CHECK(r.out.find(key) != std::string::npos);
    if (extra.find("ngram") != std::string::npos) CHECK_THAT(r.out, Catch::Contains("n-gram lookup (n <= 3)"));
  }
}

#if defined(EDGESPEC_HAS_OPENCL)
TEST_CASE("edgespec-generate places draft and target on the OpenCL device, split or overlapped: same output",
          "[cli][opencl]") {
  const auto golden = edgespec::test::load_golden("stories260K-greedy.jsonl");
  const auto& g = golden.front();
  const std::string draft = " --draft " + model_path("llama2c/llama2xs.bin");
  const std::string base = bin("edgespec-generate") + " --model " + model_path("llama2c/stories260K.bin") +
                           " --tokenizer " + model_path("llama2c/tok512.bin") + " --prompt " + quote(g.prompt) +
                           " -n 64 --json --threads 1";
  for (const std::string& extra :
       {std::string(" --target-device gpu"), std::string(" --target-split 2"), std::string(" --lm-head-device gpu"),
        draft + " --draft-device gpu", draft + " --target-device gpu",
        draft + " --draft-device gpu --target-device gpu --target-split 3",
        draft + " --draft-device gpu --schedule overlapped", draft + " --target-device gpu --schedule overlapped",
        std::string(" --draft-skip 1,3 --draft-device gpu"), std::string(" --draft-ngram 3 --target-device gpu"),
        std::string(" --draft-quant f16 --draft-device gpu --target-split 4")}) {
    INFO("options:" << extra);
    const Run r = run(base + extra);
    REQUIRE(r.status == 0);
    CHECK(json_ints(r.out, "tokens") == g.greedy_tokens);
  }
  for (const auto& [extra, message] :
       {std::pair<std::string, std::string>{draft + " --schedule overlapped", "give them different devices"},
        {" --target-split 6", "out of range [0, 5]"},
        {draft + " --draft-device gpu --schedule overlapped --target-split 2", "split target"},
        {" --target-device tpu", "is not a device"},
        {" --target-split 2 --lm-head-device cpu", "--lm-head-device must name that device"}}) {
    INFO("options:" << extra);
    const Run r = run(base + extra);
    CHECK(r.status == 1);
    CHECK_THAT(r.out, Catch::Contains(message));
  }
}
#endif

TEST_CASE("edgespec-generate sampling is reproducible with a seed", "[cli]") {
  const std::string cmd = bin("edgespec-generate") + " --model " + model_path("gguf/llama2xs-f32.gguf") +
                          " --prompt 'Tom and' -n 32 --temp 0.9 --top-p 0.95 --json --seed ";
  const Run a = run(cmd + "5"), b = run(cmd + "5"), c = run(cmd + "6");
  REQUIRE(a.status == 0);
  CHECK(json_ints(a.out, "tokens") == json_ints(b.out, "tokens"));
  CHECK(json_ints(a.out, "tokens") != json_ints(c.out, "tokens"));
}

TEST_CASE("edgespec-tokenize prints llama.cpp's ids", "[cli]") {
  const auto golden = edgespec::test::load_golden("llama2xs-greedy.jsonl");
  for (const auto& g : golden) {
    const Run r = run(bin("edgespec-tokenize") + " --model " + model_path("gguf/llama2xs-f32.gguf") + " --text " +
                      quote(g.prompt));
    REQUIRE(r.status == 0);
    CHECK(all_ints(r.out) == g.prompt_tokens);
  }
}

TEST_CASE("bad input gives a clear error and exit code 1", "[cli]") {
  const std::string gen = bin("edgespec-generate") + " --model " + model_path("gguf/stories260K-f32.gguf") + " -n 4";
  const std::string tmp = (std::filesystem::temp_directory_path() / ("edgespec-cli-" + std::to_string(::getpid()))).string();
  std::filesystem::create_directories(tmp);
  // A draft with another vocabulary: a 1-layer synthetic stories15m (32000 tokens).
  REQUIRE(run(bin("edgespec-synth") + " --shape stories15m --layers 1 --type q8_0 --seed 1 -o " + tmp + "/s15.gguf").status == 0);
  const std::pair<std::string, std::string> cases[] = {
      {gen + " --prompt x --draft " + tmp + "/s15.gguf", "Draft and Target must share a vocabulary"},
      {gen + " --prompt x --draft-skip 7", "skip layer 7 is out of range [0, 5)"},
      {gen + " --prompt x --draft-len 0 --draft-skip 1", "out of range [1, 16]"},
#if defined(EDGESPEC_HAS_OPENCL)
      {"EDGESPEC_OPENCL_DEVICE=nothing-here " + gen + " --prompt x --target-device gpu", "no device name contains it"},
#else
      {gen + " --prompt x --target-device gpu", "this build has no OpenCL"},
#endif
      {gen + " --prompt x --temp -1", "out of range"},
      {gen + " --prompt x --bogus", "unknown option --bogus"},
      {gen, "missing required option --prompt"},
      {bin("edgespec-generate") + " --model " + model_path("llama2c/stories260K.bin") + " --prompt x",
       "has no vocabulary: pass --tokenizer"},
      {bin("edgespec-generate") + " --model /nonexistent.gguf --prompt x", "/nonexistent.gguf: cannot open"},
      {bin("edgespec-synth") + " --shape llama-9b --type q8_0 -o " + tmp + "/x.gguf", "unknown model shape 'llama-9b'"},
      {bin("edgespec-synth") + " --shape stories260k --type iq2_xs -o " + tmp + "/x.gguf", "unknown weight type 'iq2_xs'"},
      {gen + " --prompt x --system hi", "--system and --chat-template need --chat"},
      {bin("edgespec-generate") + " --model " + model_path(kSmolLM2) + " --chat --prompt x --chat-template bogus",
       "chatml"},  // the message lists the valid names
      {gen + " --prompt x --stop-at-eos --ignore-eos", "not both"},
      {gen + " --prompt x --draft-ngram 0", "option --draft-ngram = 0 is out of range [1, 64]"},
      {gen + " --prompt x --draft-ngram 3 --draft-skip 1",
       "give at most one of --draft, --draft-skip, --draft-quant and --draft-ngram"},
      {gen + " --prompt x --draft-ngram 3 --early-stop 0.3", "--draft-ngram has none"},
  };
  for (const auto& [cmd, message] : cases) {
    INFO(cmd);
    const Run r = run(cmd);
    CHECK(r.status == 1);
    CHECK_THAT(r.out, Catch::Contains("error: ") && Catch::Contains(message));
  }
  std::filesystem::remove_all(tmp);
}

TEST_CASE("edgespec-generate --chat wraps the prompt in the model's chat template as llama.cpp does", "[cli][chat]") {
  const auto golden = edgespec::test::load_golden("smollm2-q4_1-greedy.jsonl");
  const std::string gen = bin("edgespec-generate") + " --model " + model_path(kSmolLM2) + " --threads 2 --json";
  int chats = 0;
  for (const auto& g : golden) {
    if (!g.chat) continue;
    ++chats;
    INFO(g.prompt);
    // --ignore-eos: exactly n tokens; the prompt tokens are llama.cpp's for the ChatML-wrapped message
    const Run r = run(gen + " --chat --ignore-eos -n 6 --prompt " + quote(g.prompt));
    REQUIRE(r.status == 0);
    CHECK(json_ints(r.out, "prompt_tokens") == g.prompt_tokens);
    CHECK(json_ints(r.out, "tokens").size() == 6);
  }
  CHECK(chats == 4);
  // Without --ignore-eos the reply ends at an end-of-generation token (<|im_end|>, id 2) before -n runs out.
  const Run r = run(gen + " --chat -n 200 --prompt 'What is the capital of France?'");
  REQUIRE(r.status == 0);
  const auto tokens = json_ints(r.out, "tokens");
  REQUIRE(!tokens.empty());
  CHECK(tokens.size() < 200);
  CHECK(tokens.back() == 2);
  // --special parses a hand-written template; plain text does not.
  const std::string hand = quote("<|im_start|>user\\nHi<|im_end|>");  // printf writes the newline
  CHECK(json_ints(run(gen + " -n 1 --special --prompt \"$(printf " + hand + ")\"").out, "prompt_tokens") ==
        std::vector<std::int32_t>{1, 4093, 198, 26843, 2});
  CHECK(json_ints(run(gen + " -n 1 --prompt \"$(printf " + hand + ")\"").out, "prompt_tokens").size() > 5);
}

TEST_CASE("edgespec-chat answers turn after turn, prefilling only each turn's new tokens", "[cli][chat]") {
  for (const std::string& extra :
       {std::string(), std::string(" --draft-quant q8_0 --draft-len 3"), std::string(" --draft-ngram 3 --draft-len 4")}) {
    INFO("options:" << extra);
    const Run r = run("printf 'What is the capital of France?\\nAnd of Germany?\\n' | " + bin("edgespec-chat") +
                      " --model " + model_path(kSmolLM2) + " --threads 2 -n 48" + extra);
    REQUIRE(r.status == 0);
    static const std::regex stats("\\[prompt ([0-9]+) tokens");
    std::vector<int> prompts;
    for (std::sregex_iterator it(r.out.begin(), r.out.end(), stats), e; it != e; ++it)
      prompts.push_back(std::stoi((*it)[1].str()));
    REQUIRE(prompts.size() == 2);
    CHECK(prompts[0] > 10);
    // the second turn: "\n<|im_start|>user\nAnd of Germany?<|im_end|>\n<|im_start|>assistant\n" (+ the pending token)
    CHECK(prompts[1] < prompts[0]);
    CHECK_THAT(r.out, Catch::Contains("Paris"));
    CHECK_THAT(r.out, Catch::Contains("template chatml"));
  }
}

TEST_CASE("edgespec-convert re-types a GGUF to every weight type, with llama-quantize's fallbacks", "[cli][convert]") {
  const std::string tmp = (std::filesystem::temp_directory_path() / ("edgespec-cv-" + std::to_string(::getpid()))).string();
  std::filesystem::create_directories(tmp);
  for (const char* type : {"q4_1", "q5_0", "q5_1", "iq4_nl", "q2_k", "q3_k", "q4_k", "q5_k", "q6_k"}) {
    INFO(type);
    const std::string out = tmp + "/x.gguf";
    const Run c = run(bin("edgespec-convert") + " " + model_path("gguf/llama2xs-f32.gguf") + " -o " + out + " --type " + type);
    REQUIRE(c.status == 0);
    CHECK_THAT(c.out, Catch::Contains("[  48/48]"));  // the progress line of the last tensor
    const Run g = run(bin("edgespec-generate") + " --model " + out + " --prompt 'Tom and' -n 4 --json");
    CHECK(g.status == 0);
    CHECK(json_ints(g.out, "tokens").size() == 4);
  }
  std::filesystem::remove_all(tmp);
}
