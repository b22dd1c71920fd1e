// Transformer::forward_batch: several sequences, each with its own KV cache, in one pass. Every sequence's
// logits and cache rows are bit-identical to running it alone, through prefill, mixed decode/verify steps and
// rollback; bad batches are rejected before anything changes.
#include <catch2/catch.hpp>

#include <edgespec/edgespec.hpp>

#include <cstring>

#include "test_util.hpp"

namespace {

using namespace edgespec;

std::shared_ptr<const LlamaWeights> load(const char* rel) {
  return std::make_shared<const LlamaWeights>(load_weights(test::model_path(rel)));
}

bool same_bits(std::span<const float> a, std::span<const float> b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// Token ids below 512 exist in every vocabulary used here.
const std::vector<std::vector<std::int32_t>> kPrompts = {
    {1, 403, 407, 261, 378, 432, 383, 286, 261, 376, 298},
    {1, 12, 99, 310},
    {1, 77, 78, 79, 80, 81, 82, 83, 84, 85, 86, 87, 88, 89, 90, 91, 92, 93, 94, 95},
};

}  // namespace

TEST_CASE("a batch of sequences equals each sequence alone", "[transformer][batch]") {
  const char* file = GENERATE("llama2c/stories260K.bin", "gguf/llama2xs-q8_0.gguf",
                              "gguf/smollm2-135m-instruct-q4_1.gguf");
  const int threads = GENERATE(1, 2);
  INFO(file << ", " << threads << " threads");
  auto w = load(file);
  ThreadPool pool(threads);
  const auto v = static_cast<std::size_t>(w->config.vocab_size);
  const std::size_t S = kPrompts.size();

  Transformer<> batched(w, pool, 64);
  std::vector<KvCache> caches;
  for (std::size_t s = 0; s < S; ++s) caches.push_back(batched.make_cache());
  std::vector<std::unique_ptr<Transformer<>>> alone;
  for (std::size_t s = 0; s < S; ++s) alone.push_back(std::make_unique<Transformer<>>(w, pool, 64));

  // Rounds of (tokens per sequence, logits rows per sequence): prefill with every row, then decode/verify
  // steps of different lengths, one with a rollback of sequence 1 before it.
  struct Step {
    std::vector<std::vector<std::int32_t>> tokens;
    std::vector<int> logit_rows;
    int rollback_seq1 = -1;
  };
  const std::vector<Step> steps = {
      {kPrompts, {11, 1, 20}},
      {{{5}, {6, 7, 8}, {9, 10}}, {1, 3, 2}},
      {{{11, 12, 13, 14, 15}, {16}, {17}}, {5, 1, 1}, 2},
      {{{18}, {19, 20, 21, 22, 23, 24, 25, 26, 27}, {28, 29, 30}}, {1, 9, 1}},
  };
  for (std::size_t k = 0; k < steps.size(); ++k) {
    INFO("step " << k);
    const Step& st = steps[k];
    if (st.rollback_seq1 >= 0) {
      caches[1].truncate(st.rollback_seq1);
      alone[1]->truncate(st.rollback_seq1);
    }
    std::vector<SequenceInput> in;
    for (std::size_t s = 0; s < S; ++s) in.push_back({&caches[s], st.tokens[s], st.logit_rows[s]});
    const auto got = batched.forward_batch(in);
    const std::vector<float> rows(got.begin(), got.end());
    std::size_t at = 0;
    for (std::size_t s = 0; s < S; ++s) {
      INFO("sequence " << s);
      const auto want = alone[s]->forward(st.tokens[s], Logits::All);
      const auto n = st.tokens[s].size(), r = static_cast<std::size_t>(st.logit_rows[s]);
      REQUIRE(at + r * v <= rows.size());
      CHECK(same_bits(std::span<const float>(rows).subspan(at, r * v), want.subspan((n - r) * v, r * v)));
      at += r * v;
      CHECK(caches[s].position() == alone[s]->position());
    }
    CHECK(at == rows.size());
  }
  for (std::size_t s = 0; s < S; ++s)
    for (int l = 0; l < w->config.n_layers; l += 2)
      for (int p = 0; p < caches[s].position(); p += 3) {
        CHECK(caches[s].key(l, p) == alone[s]->key(l, p));
        CHECK(caches[s].value(l, p) == alone[s]->value(l, p));
      }
}

TEST_CASE("forward_batch rejects bad batches and changes nothing", "[transformer][batch]") {
  auto w = load("llama2c/stories260K.bin");
  auto other = load("gguf/llama2xs-f32.gguf");
  ThreadPool pool(2);
  Transformer<> model(w, pool, 32);
  KvCache a = model.make_cache(), b = model.make_cache(16);
  Transformer<> small_model(other, pool, 32, KvType::F32);
  KvCache foreign = small_model.make_cache();
  const std::vector<std::int32_t> t3 = {1, 2, 3}, bad = {1, 512};
  const std::vector<std::int32_t> t17(17, 5);

  auto rejects = [&](std::vector<SequenceInput> in, const char* what) {
    INFO(what);
    CHECK_THROWS_WITH(model.forward_batch(in), Catch::Contains(what));
    CHECK(a.position() == 0);
    CHECK(b.position() == 0);
  };
  rejects({}, "no sequences");
  rejects({{&a, t3, 1}, {&a, t3, 1}}, "share one KV cache");
  rejects({{&a, t3, 1}, {&foreign, t3, 1}}, "not made for this model");
  rejects({{&a, t3, 1}, {&b, t17, 1}}, "context overflow");
  rejects({{&a, t3, 4}}, "rows of logits");
  rejects({{&a, t3, -1}}, "rows of logits");
  rejects({{&a, t3, 1}, {&b, bad, 1}}, "out of range");
  rejects({{nullptr, t3, 1}}, "no KV cache");

  // The batch still works afterwards.
  const std::vector<SequenceInput> ok = {{&a, t3, 1}, {&b, t3, 3}};
  CHECK(model.forward_batch(ok).size() == 4 * 512);
  CHECK(a.position() == 3);
  CHECK(b.position() == 3);
  // logit_rows 0: a prefill that only fills the cache.
  const std::vector<SequenceInput> fill = {{&a, t3, 0}};
  CHECK(model.forward_batch(fill).empty());
  CHECK(a.position() == 6);
}
