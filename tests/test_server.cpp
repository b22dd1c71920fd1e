// The SLED server's library half (serving/): BatchVerifier batches the verification of many sessions and keeps
// every session's output exact; its errors; and, through HttpServer over real HTTP, the target's distribution
// under stochastic verification (chi-square, as test_speculative_distribution.cpp).
#include <catch2/catch.hpp>

#include <atomic>
#include <cmath>
#include <thread>

#include <edgespec/edgespec.hpp>
#include <edgespec/serving/device_drafter.hpp>
#include <edgespec/serving/http_server.hpp>

#include "chi_square.hpp"
#include "golden.hpp"

namespace {

using namespace edgespec;
using namespace edgespec::serving;
using json = nlohmann::json;

std::shared_ptr<const LlamaWeights> load(const char* rel) {
  return std::make_shared<const LlamaWeights>(load_weights(test::model_path(rel)));
}

// Greedy generation of n tokens through a BatchVerifier with a drafter; returns the generated tokens.
std::vector<std::int32_t> generate(BatchVerifier& v, DeviceDrafter& drafter, const std::vector<std::int32_t>& prompt,
                                   int n, int draft_len) {
  const SessionInfo s = v.open(prompt, SamplingParams{});
  drafter.begin(prompt);
  std::vector<std::int32_t> seq = prompt, out;
  while (static_cast<int>(out.size()) < n) {
    VerifyRequest rq;
    drafter.draft(seq, draft_len, rq.draft, rq.q);
    const std::vector<std::int32_t> d = rq.draft;
    const VerifyReply r = v.verify(s.id, std::move(rq));
    seq.insert(seq.end(), d.begin(), d.begin() + r.accepted);
    seq.push_back(r.next_token);
    drafter.accept(seq);
    out.assign(seq.begin() + static_cast<std::ptrdiff_t>(prompt.size()), seq.end());
  }
  v.close(s.id);
  out.resize(static_cast<std::size_t>(n));
  return out;
}

}  // namespace

TEST_CASE("concurrent sessions with different drafters get the golden continuations, batched", "[server]") {
  auto target = load("llama2c/stories260K.bin");
  auto draft = load("llama2c/llama2xs.bin");
  const int max_batch = GENERATE(1, 8);
  INFO("max_batch " << max_batch);
  ThreadPool pool(1);
  VerifierOptions o;
  o.max_batch = max_batch;
  o.ctx = 256;
  BatchVerifier v(target, pool, o);
  const auto cases = test::load_golden("stories260K-greedy.jsonl");
  constexpr int kClients = 12;
  std::vector<std::vector<std::int32_t>> got(kClients);
  std::vector<std::string> errors(kClients);
  std::vector<std::thread> clients;
  for (int c = 0; c < kClients; ++c)
    clients.emplace_back([&, c] {
      try {
        ThreadPool own(1);
        const test::GoldenCase& g = cases[static_cast<std::size_t>(c) % cases.size()];
        DeviceDrafter d = c % 3 == 0   ? DeviceDrafter::model(draft, own, o.ctx, SamplingParams{})
                          : c % 3 == 1 ? DeviceDrafter::ngram(1 + c % 4)
                                       : DeviceDrafter::none();
        got[static_cast<std::size_t>(c)] =
            generate(v, d, g.prompt_tokens, static_cast<int>(g.greedy_tokens.size()), 1 + c % 6);
      } catch (const std::exception& e) {
        errors[static_cast<std::size_t>(c)] = e.what();
      }
    });
  for (auto& t : clients) t.join();
  for (int c = 0; c < kClients; ++c) {
    INFO("client " << c);
    CHECK(errors[static_cast<std::size_t>(c)].empty());
    CHECK(got[static_cast<std::size_t>(c)] == cases[static_cast<std::size_t>(c) % cases.size()].greedy_tokens);
  }
  const VerifierMetrics m = v.metrics();
  CHECK(m.sessions == 0);
  CHECK(m.sessions_opened == kClients);
  CHECK(m.emitted_tokens >= kClients * 64);
  if (max_batch == 1) CHECK(m.batched_sequences == m.forwards);
  else CHECK(m.batched_sequences > m.forwards);  // some forwards served several sessions
  WARN("max_batch " << max_batch << ": " << m.forwards << " forwards served " << m.batched_sequences
                    << " session-rounds, " << m.batched_positions << " positions");
}

TEST_CASE("BatchVerifier rejects bad requests with the right status and loses nothing", "[server]") {
  auto target = load("llama2c/stories260K.bin");
  ThreadPool pool(1);
  VerifierOptions o;
  o.max_sessions = 2;
  o.ctx = 16;
  o.max_draft = 4;
  BatchVerifier v(target, pool, o);
  auto status_of = [](auto&& f) {
    try {
      f();
    } catch (const RequestError& e) {
      return e.status();
    }
    return 0;
  };
  const std::vector<std::int32_t> prompt = {1, 403, 407};
  SamplingParams stochastic;
  stochastic.temperature = 1.0f;
  const SessionInfo a = v.open(prompt, SamplingParams{});
  const SessionInfo b = v.open(prompt, stochastic);
  CHECK(status_of([&] { (void)v.open(prompt, SamplingParams{}); }) == 429);  // max_sessions
  CHECK(status_of([&] { (void)v.verify(999, {}); }) == 404);
  CHECK(status_of([&] { (void)v.verify(a.id, {{}, {1, 2, 3, 4, 5}, {}}); }) == 400);  // draft longer than max_draft
  CHECK(status_of([&] { (void)v.verify(a.id, {{}, {512}, {}}); }) == 400);           // not a token id
  CHECK(status_of([&] { (void)v.verify(a.id, {{-1}, {}, {}}); }) == 400);
  CHECK(status_of([&] { (void)v.verify(a.id, {{}, {5}, {{{}, std::vector<float>(512, 1.0f / 512)}}}); }) == 400);
  // Stochastic: q must be one distribution per draft token, summing to 1, with mass on the drafted token.
  CHECK(status_of([&] { (void)v.verify(b.id, {{}, {5, 6}, {{{5}, {1.0f}}}}); }) == 400);
  CHECK(status_of([&] { (void)v.verify(b.id, {{}, {5}, {{{5, 6}, {0.5f, 0.4f}}}}); }) == 400);
  CHECK(status_of([&] { (void)v.verify(b.id, {{}, {5}, {{{6}, {1.0f}}}}); }) == 400);
  CHECK(status_of([&] { (void)v.verify(b.id, {{}, {5}, {{{5}, {std::nanf("")}}}}); }) == 400);
  CHECK(status_of([&] { (void)v.open({}, SamplingParams{}); }) == 400);
  // Context: 16 positions; the sequence has 3 tokens, so 3 + 12 appended + 1 draft = 16 fits and one more does not.
  CHECK(status_of([&] { (void)v.verify(a.id, {std::vector<std::int32_t>(13, 7), {4}, {}}); }) == 400);
  // Nothing was lost: both sessions still verify.
  CHECK(v.sequence(a.id) == prompt);
  const VerifyReply r = v.verify(a.id, {{}, {432}, {}});
  CHECK(r.length == 3 + r.accepted + 1);
  CHECK(v.verify(b.id, {{}, {5}, {{{5, 6}, {0.5f, 0.5f}}}}).length >= 4);
  CHECK(status_of([&] { (void)v.verify(a.id, {std::vector<std::int32_t>(12, 7), {4}, {}}); }) == 400);
  v.close(a.id);
  CHECK(status_of([&] { v.close(a.id); }) == 404);
  const SessionInfo c = v.open(prompt, SamplingParams{});  // a slot is free again
  CHECK(c.id != a.id);
  v.stop();
  CHECK(status_of([&] { (void)v.verify(c.id, {}); }) == 503);
}

TEST_CASE("idle sessions expire", "[server]") {
  auto target = load("llama2c/stories260K.bin");
  ThreadPool pool(1);
  VerifierOptions o;
  o.idle_timeout = 0.2;
  o.ctx = 32;
  BatchVerifier v(target, pool, o);
  const SessionInfo s = v.open({1, 403}, SamplingParams{});
  std::this_thread::sleep_for(std::chrono::milliseconds(800));
  CHECK(v.metrics().sessions == 0);
  CHECK(v.metrics().sessions_expired == 1);
  CHECK_THROWS_WITH(v.verify(s.id, {}), Catch::Contains("no session"));
}

TEST_CASE("stochastic verification through the HTTP server emits the target's distribution", "[server][distribution]") {
  auto target = load("llama2c/stories260K.bin");
  auto draft = load("llama2c/llama2xs.bin");
  const std::vector<std::int32_t> prompt = {1, 291};  // "The": a broad next-token law
  SamplingParams sp;
  sp.temperature = GENERATE(1.0f, 0.8f);
  sp.top_p = sp.temperature < 1.0f ? 0.9f : 1.0f;
  INFO("temperature " << sp.temperature << " top-p " << sp.top_p);

  ThreadPool pool(1);
  Transformer<> reference(target, pool, 32), draft_model(draft, pool, 32);
  std::vector<float> p(512), q(512);
  std::vector<std::int32_t> scratch;
  distribution(reference.forward(prompt), sp, p, scratch);
  distribution(draft_model.forward(prompt), sp, q, scratch);

  VerifierOptions o;
  o.ctx = 32;
  o.max_sessions = 64;
  BatchVerifier v(target, pool, o);
  HttpOptions ho;
  ho.port = 0;
  ho.http_threads = 16;
  HttpServer http(v, Tokenizer(load_llama2c_tokenizer(test::model_path("llama2c/tok512.bin"), 512)), std::nullopt, ho);
  const int port = http.bind();
  std::thread server([&] { http.serve(); });

  constexpr int kClients = 8;
  constexpr long kPerClient = 900;
  std::vector<long> counts(512, 0);
  std::atomic<long> accepted_first{0}, failures{0};
  std::mutex counts_mu;
  std::vector<std::thread> clients;
  for (int c = 0; c < kClients; ++c)
    clients.emplace_back([&, c] {
      httplib::Client cli("127.0.0.1", port);
      cli.set_tcp_nodelay(true);
      ThreadPool own(1);
      for (long s = 0; s < kPerClient; ++s) {
        SamplingParams mine = sp;
        mine.seed = static_cast<std::uint64_t>(c) * 1000003u + static_cast<std::uint64_t>(s) + 1;
        DeviceDrafter d = DeviceDrafter::model(draft, own, 32, mine);
        d.begin(prompt);
        std::vector<std::int32_t> drafts;
        std::vector<DraftDistribution> qs;
        d.draft(prompt, 3, drafts, qs);
        const json open = {{"prompt_tokens", prompt}, {"temperature", mine.temperature}, {"top_p", mine.top_p},
                           {"seed", mine.seed}};
        auto r1 = cli.Post("/v1/sessions", open.dump(), "application/json");
        if (!r1 || r1->status != 201) {
          ++failures;
          continue;
        }
        const auto id = json::parse(r1->body).at("session").get<std::int64_t>();
        json body = {{"draft", drafts}, {"q", json::array()}};
        for (const auto& x : qs) body["q"].push_back({{"ids", x.ids}, {"probs", x.probs}});
        const std::string path = "/v1/sessions/" + std::to_string(id);
        auto r2 = cli.Post(path + "/verify", body.dump(), "application/json");
        cli.Delete(path);
        if (!r2 || r2->status != 200) {
          ++failures;
          continue;
        }
        const json r = json::parse(r2->body);
        const auto first = r.at("tokens")[0].get<std::int32_t>();
        accepted_first += r.at("accepted").get<int>() > 0;
        std::lock_guard lock(counts_mu);
        ++counts[static_cast<std::size_t>(first)];
      }
    });
  for (auto& t : clients) t.join();
  http.stop();
  server.join();

  const long n = kClients * kPerClient;
  CHECK(failures == 0);
  // Chi-square with bins of expected count < 5 pooled, rejecting at the 1 - 1e-7 quantile (chi_square.hpp).
  const test::ChiSquare c = test::chi_square(counts, p, n);
  const double stat = c.statistic, critical = c.critical, stat_q = test::chi_square(counts, q, n).statistic;
  const int df = c.df;
  WARN("through HTTP, T " << sp.temperature << " top-p " << sp.top_p << ": chi2 " << stat << " df " << df
                          << " critical " << critical << "; against the draft's law " << stat_q
                          << "; first draft token accepted " << accepted_first << " / " << n);
  CHECK(stat < critical);
  CHECK(accepted_first > n / 10);  // the drafts were really used
  CHECK(stat_q > critical);        // power: the draft's law is rejected
}
