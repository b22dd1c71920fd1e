// SmolLM2-135M-Instruct (a real instruct model, GGUF as distributed: Q4_1) against llama.cpp's reference
// continuations (../shared/golden/smollm2-*.jsonl: 8 plain prompts, 4 chat prompts wrapped by the ChatML
// template), for the F32/F16/Q8_0 conversions edgespec-convert makes of the Q4_1 file, the Q4_1 file itself and
// llama.cpp's Q4_K_M of it (when it is in the model directory: see ../shared/models/MANIFEST.md).
//
// Prompt tokens: always equal. Greedy tokens: the F32 conversion reproduces llama.cpp exactly (12/12). The other
// types compute with rounded activations (F16: activations rounded to f16; quantized types: activations
// quantized per block, integer products), which makes the continuation chaotic in the float summation order: a
// relative perturbation of 1e-6 of the input embeddings moves the Q8_0 model's logits by up to 0.25, and
// llama.cpp c392e50 itself, built on this development machine, reproduces these files only 2/12 (Q8_0), 1/12
// (Q4_1) and 4/12 (Q4_K_M) times, its divergences being near-ties with gaps up to 0.41. So for those types the
// check is: equal up to the first divergence, where llama.cpp's token must be within kNearTie of our best logit
// (a near-tie); each divergence is reported with its position and both logits.
#include <catch2/catch.hpp>

#include <cstdio>
#include <filesystem>
#include <unistd.h>

#include <edgespec/edgespec.hpp>

#include "golden.hpp"

namespace {

using namespace edgespec;
namespace fs = std::filesystem;

constexpr float kNearTie = 0.5f;
const char* const kQ4_1 = "gguf/smollm2-135m-instruct-q4_1.gguf";
const char* const kQ4KM = "gguf/smollm2-135m-instruct-q4_k_m.gguf";

// EDGESPEC_TEST_QUICK (the sanitizer pass): 3 cases of 16 tokens per file.
bool quick() { return std::getenv("EDGESPEC_TEST_QUICK") != nullptr; }

// The Q4_1 file converted to `type` by the library's convert_to_gguf (edgespec-convert), made once per build
// directory (EDGESPEC_TEST_CACHE_DIR) and renamed into place, so parallel test processes never see half a file.
std::string converted(DType type) {
  const char* env = std::getenv("EDGESPEC_TEST_CACHE_DIR");
  const fs::path dir = env != nullptr && *env != '\0' ? fs::path(env) : fs::temp_directory_path() / "edgespec-test-cache";
  fs::create_directories(dir);
  std::string lower(name(type));
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  const fs::path out = dir / ("smollm2-" + lower + ".gguf");
  if (!fs::exists(out)) {
    const LlamaWeights w = load_weights(test::model_path(kQ4_1), {.pack = false});
    const fs::path tmp = dir / (out.filename().string() + "." + std::to_string(::getpid()) + ".tmp");
    convert_to_gguf(tmp.string(), w, vocab_from_gguf(*w.gguf), type, "SmolLM2-135M-Instruct");
    fs::rename(tmp, out);
  }
  return out.string();
}

std::vector<std::int32_t> prompt_tokens(const Tokenizer& tok, const GgufFile& f, const test::GoldenCase& g) {
  if (!g.chat) return tok.encode(g.prompt, /*add_special=*/true);
  const ChatTemplate t = resolve_chat_template(f.get_string("tokenizer.chat_template"), std::nullopt);
  const std::vector<ChatMessage> messages{{"user", g.prompt}};
  return tok.encode(apply_chat_template(t, messages, true), /*add_special=*/true, /*parse_special=*/true);
}

struct Outcome {
  int cases = 0, exact = 0;
};

// Teacher-forced greedy decoding along llama.cpp's tokens; exact: every step must agree.
Outcome check_file(const std::string& path, const std::string& golden, bool exact) {
  auto w = std::make_shared<const LlamaWeights>(load_weights(path));
  const Tokenizer tok(vocab_from_gguf(*w->gguf));
  ThreadPool pool(2);
  Transformer<AnyLlama> model(w, pool, 256);
  Outcome out;
  auto cases = test::load_golden(golden);
  if (quick()) cases.resize(std::min<std::size_t>(cases.size(), 3));
  for (const test::GoldenCase& g : cases) {
    INFO(path << (g.chat ? " chat" : "") << " prompt: " << g.prompt);
    REQUIRE(prompt_tokens(tok, *w->gguf, g) == g.prompt_tokens);
    ++out.cases;
    model.reset();
    std::span<const float> logits = model.forward(g.prompt_tokens);
    const std::size_t steps = quick() ? std::min<std::size_t>(16, g.greedy_tokens.size()) : g.greedy_tokens.size();
    bool same = true;
    for (std::size_t step = 0; step < steps && same; ++step) {
      const std::int32_t want = g.greedy_tokens[step], got = greedy_token(logits);
      if (got != want) {
        same = false;
        const float gap = logits[static_cast<std::size_t>(got)] - logits[static_cast<std::size_t>(want)];
        const std::string where = path + " case " + std::to_string(out.cases) + " step " + std::to_string(step) +
                                  ": edgespec " + std::to_string(got) + " (logit " +
                                  std::to_string(logits[static_cast<std::size_t>(got)]) + "), llama.cpp " +
                                  std::to_string(want) + " (logit " +
                                  std::to_string(logits[static_cast<std::size_t>(want)]) + "), gap " + std::to_string(gap);
        if (exact) FAIL_CHECK("diverges at " << where);
        else {
          WARN("near-tie divergence at " << where);
          CHECK(gap <= kNearTie);
        }
      }
      logits = model.forward(std::span<const std::int32_t>(&want, 1));
    }
    out.exact += same;
  }
  WARN(path << ": " << out.exact << "/" << out.cases << " continuations equal llama.cpp's token for token");
  return out;
}

}  // namespace

TEST_CASE("SmolLM2 F32 conversion of the Q4_1 file: llama.cpp's greedy continuations exactly", "[golden][smollm2]") {
  const Outcome o = check_file(converted(DType::F32), "smollm2-f32-greedy.jsonl", /*exact=*/true);
  CHECK(o.exact == o.cases);
}

TEST_CASE("SmolLM2 F16 and Q8_0 conversions, the Q4_1 file as distributed: equal or a near-tie",
          "[golden][smollm2]") {
  check_file(converted(DType::F16), "smollm2-f16-greedy.jsonl", false);
  check_file(converted(DType::Q8_0), "smollm2-q8_0-greedy.jsonl", false);
  check_file(test::model_path(kQ4_1), "smollm2-q4_1-greedy.jsonl", false);
}

TEST_CASE("SmolLM2 Q4_K_M made by llama.cpp (when present): equal or a near-tie", "[golden][smollm2]") {
  const std::string path = test::model_path(kQ4KM);
  if (!fs::exists(path)) {
    WARN("SKIPPED: " << path << " is not in the model directory, so llama.cpp's Q4_K_M (Q4_K, Q6_K, Q5_0 and "
                     "Q8_0 tensors) was not checked against its golden continuations. Make it with llama.cpp's "
                     "llama-quantize as ../shared/models/MANIFEST.md says (scripts/make-reference-models).");
    return;
  }
  check_file(path, "smollm2-q4_k_m-greedy.jsonl", false);
}

// A speculative pipeline on the real model: F16 target, its Q8_0 copy drafting; greedy output must be the target's.
TEST_CASE("SmolLM2 speculative greedy output equals target-only greedy output", "[golden][smollm2][speculative]") {
  auto target = std::make_shared<const LlamaWeights>(load_weights(converted(DType::F16)));
  auto draft = std::make_shared<const LlamaWeights>(requantize(target, DType::Q8_0));
  ThreadPool pool(2);
  PipelineOptions o;
  o.max_seq = 256;
  Pipeline<Draft<>, Target<>, DraftLen<3>> p(target, draft, pool, o);
  Transformer<AnyLlama> alone(target, pool, 256);
  auto cases = test::load_golden("smollm2-f16-greedy.jsonl");
  cases.resize(quick() ? 1 : 3);
  for (const auto& g : cases) {
    const SpeculativeResult r = p.generate(g.prompt_tokens, 48);
    std::vector<std::int32_t> want;
    alone.reset();
    std::span<const float> logits = alone.forward(g.prompt_tokens);
    for (int i = 0; i < 48; ++i) {
      want.push_back(greedy_token(logits));
      logits = alone.forward(std::span<const std::int32_t>(&want.back(), 1));
    }
    CHECK(r.tokens == want);
    CHECK(r.stats.acceptance_rate() > 0.5);
  }
}
