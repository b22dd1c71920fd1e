// Greedy continuations equal llama.cpp's (../shared/golden), token for token, from the llama2.c .bin files and
// the F32 GGUF files. The first steps' top-5 logits agree within 5e-3 (measured max 1.9e-3 on stories260K, whose
// attention operands are rounded to f16 as llama.cpp does: a summation-order difference can flip an f16 rounding).
#include <catch2/catch.hpp>

#include <edgespec/edgespec.hpp>

#include "golden.hpp"

namespace {

using namespace edgespec;

struct Source {
  const char* model;
  const char* tokenizer;  // "" for GGUF (embedded vocabulary)
  const char* golden;
};

Tokenizer tokenizer_for(const LlamaWeights& w, const std::string& tok) {
  return tok.empty() ? Tokenizer(vocab_from_gguf(*w.gguf)) : Tokenizer(load_llama2c_tokenizer(tok, w.config.vocab_size));
}

template <class Arch>
void check_golden(const Source& src, int threads) {
  auto w = std::make_shared<const LlamaWeights>(load_weights(test::model_path(src.model)));
  const Tokenizer tok = tokenizer_for(*w, *src.tokenizer ? test::model_path(src.tokenizer) : "");
  ThreadPool pool(threads);
  Transformer<Arch> model(w, pool, 256);
  for (const test::GoldenCase& g : test::load_golden(src.golden)) {
    INFO(src.model << " prompt: " << g.prompt);
    REQUIRE(tok.encode(g.prompt, true) == g.prompt_tokens);
    model.reset();
    std::span<const float> logits = model.forward(g.prompt_tokens);
    for (std::size_t step = 0; step < g.greedy_tokens.size(); ++step) {
      const std::int32_t want = g.greedy_tokens[step];
      const std::int32_t got = greedy_token(logits);
      if (step < g.top5.size())
        for (const auto& [id, ref] : g.top5[step]) {
          INFO("step " << step << " token " << id);
          CHECK(logits[static_cast<std::size_t>(id)] == Approx(ref).margin(5e-3));
        }
      if (got != want) {
        FAIL_CHECK("diverges at step " << step << ": got " << got << " (logit " << logits[got] << "), llama.cpp "
                                       << want << " (logit " << logits[want] << ")");
        break;
      }
      logits = model.forward(std::span<const std::int32_t>(&want, 1));
    }
  }
}

}  // namespace

TEST_CASE("greedy continuations equal llama.cpp's, dynamic architecture", "[golden]") {
  const int threads = GENERATE(1, 2);
  for (const Source& s : {Source{"llama2c/stories260K.bin", "llama2c/tok512.bin", "stories260K-greedy.jsonl"},
                          Source{"gguf/stories260K-f32.gguf", "", "stories260K-greedy.jsonl"},
                          Source{"llama2c/llama2xs.bin", "llama2c/tok512.bin", "llama2xs-greedy.jsonl"},
                          Source{"gguf/llama2xs-f32.gguf", "", "llama2xs-greedy.jsonl"}})
    check_golden<AnyLlama>(s, threads);
}

// Every dimension fixed at compile time: fully specialized kernels, same answers.
TEST_CASE("greedy continuations equal llama.cpp's, fixed architecture Stories260K", "[golden]") {
  check_golden<Stories260K>({"llama2c/stories260K.bin", "llama2c/tok512.bin", "stories260K-greedy.jsonl"}, 2);
  check_golden<Stories260K>({"gguf/stories260K-f32.gguf", "", "stories260K-greedy.jsonl"}, 1);
}
