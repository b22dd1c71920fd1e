// The cost model's formulas against hand-computed cases (docs/cost-model.md): alpha = 0, alpha = 1, g = 1,
// acceptance per position, early stop, the adaptive rule, the overlapped schedule, an n-gram lookup's rounds, and
// evaluation in a constant expression.
#include <array>

#include <catch2/catch.hpp>
#include <edgespec/planning/cost_model.hpp>

namespace cost = edgespec::cost;

namespace {
// A flat world: every forward costs the same whatever the context. Target: 10 ms + 1 ms per extra position;
// draft: 2 ms (2.5 ms for two positions).
constexpr std::array<double, 1> kCtx{0};
constexpr std::array<double, 4> kTarget{0.010, 0.011, 0.012, 0.013};  // n = 1..4
constexpr std::array<double, 2> kDraft{0.002, 0.0025};
constexpr std::array<double, 2> kPrefillN{10, 20};
constexpr std::array<double, 2> kPrefillT{0.05, 0.10};

constexpr cost::Costs flat_costs() {
  cost::Costs c;
  c.target = {{kCtx, kTarget, 4}, {kPrefillN, kPrefillT}};
  c.draft = {{kCtx, kDraft, 2}, {kPrefillN, kPrefillT}};
  return c;
}
}  // namespace

TEST_CASE("expected tokens per round: closed form and per position", "[cost]") {
  STATIC_REQUIRE(cost::expected_tokens(0.0, 4) == 1.0);  // alpha = 0: only the correction
  STATIC_REQUIRE(cost::expected_tokens(1.0, 4) == 5.0);  // alpha = 1: g + 1
  STATIC_REQUIRE(cost::expected_tokens(0.5, 1) == 1.5);  // g = 1: 1 + alpha
  CHECK(cost::expected_tokens(0.8, 4) == Approx((1 - 0.8 * 0.8 * 0.8 * 0.8 * 0.8) / (1 - 0.8)));
  static constexpr std::array<double, 3> a{0.9, 0.5, 0.2};
  STATIC_REQUIRE(cost::expected_tokens(std::span<const double>(a), 0) == 1.0);
  CHECK(cost::expected_tokens(std::span<const double>(a), 3) == Approx(1 + 0.9 + 0.45 + 0.09));
  CHECK(cost::expected_tokens(std::span<const double>(a), 2) == Approx(2.35));
}

TEST_CASE("latency tables interpolate in the context and extrapolate in n", "[cost]") {
  static constexpr std::array<double, 2> ctx{0, 100};
  static constexpr std::array<double, 4> t{1, 2, 3, 5};  // context 0: n = 1, 2; context 100: n = 1, 2
  constexpr cost::LatencyTable table{ctx, t, 2};
  STATIC_REQUIRE(table(1, 0) == 1);
  STATIC_REQUIRE(table(2, 100) == 5);
  STATIC_REQUIRE(table(1, 50) == 2);       // halfway: (1 + 3) / 2
  STATIC_REQUIRE(table(3, 0) == 3);        // n beyond max_n: 2 + (2 - 1)
  STATIC_REQUIRE(table(1, 200) == 5);      // beyond the last context: the last segment's slope
  constexpr cost::PrefillCurve curve{kPrefillN, kPrefillT};
  STATIC_REQUIRE(curve(15) > 0.0749 && curve(15) < 0.0751);
  STATIC_REQUIRE(curve(5) == 0.025);       // below the first length: proportional
  STATIC_REQUIRE(curve(0) == 0.0);
}

TEST_CASE("forced acceptance: alpha = 0 and alpha = 1 by hand", "[cost]") {
  constexpr cost::Costs c = flat_costs();
  cost::Trace t;
  cost::Config cfg;
  cfg.draft_len = 3;
  const cost::Workload w{10, 100};

  // alpha = 1: every round emits g + 1 = 4 tokens; after the first round the draft's first forward feeds two
  // tokens (d_g and the bonus): 2.5 + 2 + 2 ms of drafting, 13 ms of verification.
  t.forced_alpha = 1.0;
  t.forced_episodes = 1;
  cost::Prediction p = cost::predict(c, t, cfg, w);
  CHECK(p.tokens_per_round == Approx(4.0));
  // 25 rounds: the first drafts 2 + 2 + 2 ms, the others 2.5 + 2 + 2 ms
  const double spec = 25 * 0.013 + 0.006 + 24 * 0.0065;
  const double base = 99 * 0.010;  // the first token comes from the prefill
  CHECK(p.speedup == Approx(base / spec));
  CHECK(p.tokens_per_second == Approx(100 / spec));
  CHECK(p.baseline_tokens_per_second == Approx(100 / base));
  CHECK(p.latency_seconds == Approx(0.045 + 0.045 + spec));  // both prefill 9 tokens, then decode
  CHECK(p.baseline_latency_seconds == Approx(0.05 + base));

  // alpha = 0: one token per round, every round 3 drafts (6 ms) and a 4-position verification (13 ms).
  t.forced_alpha = 0.0;
  p = cost::predict(c, t, cfg, w);
  CHECK(p.tokens_per_round == Approx(1.0));
  CHECK(p.speedup == Approx(base / (100 * 0.019)));
  CHECK(p.speedup < 1.0);

  // g = 1, alpha = 1: 2 tokens per round, each round one draft forward (2.5 ms after the first) and 11 ms.
  t.forced_alpha = 1.0;
  cfg.draft_len = 1;
  p = cost::predict(c, t, cfg, w);
  CHECK(p.tokens_per_round == Approx(2.0));
  CHECK(p.speedup == Approx(base / (50 * 0.011 + 0.002 + 49 * 0.0025)));
}

TEST_CASE("forced acceptance converges to the closed form", "[cost]") {
  constexpr cost::Costs c = flat_costs();
  cost::Trace t;
  t.forced_alpha = 0.7;
  t.forced_episodes = 400;
  cost::Config cfg;
  cfg.draft_len = 3;
  const cost::Prediction p = cost::predict(c, t, cfg, {10, 200});
  CHECK(p.tokens_per_round == Approx(cost::expected_tokens(0.7, 3)).epsilon(0.02));
}

TEST_CASE("profiled rounds: per-position acceptance, shorter g, early stop", "[cost]") {
  constexpr cost::Costs c = flat_costs();
  // Two rounds recorded at G = 4: 4 accepted, then 1 accepted; the draft's top probabilities per position.
  constexpr std::array<int, 2> acc{4, 1};
  constexpr std::array<float, 8> top{0.9f, 0.9f, 0.9f, 0.9f, 0.9f, 0.3f, 0.9f, 0.9f};
  const cost::Trace t{4, acc, top, {}};
  CHECK(t.acceptance_at(1) == 1.0);
  CHECK(t.acceptance_at(2) == 0.5);
  CHECK(t.acceptance_at(4) == 1.0);
  cost::Config cfg;
  cfg.draft_len = 2;
  cost::Prediction p = cost::predict(c, t, cfg, {10, 5});  // rounds: 3 tokens (2 of 2), 2 tokens (1 of 2)
  CHECK(p.tokens_per_round == Approx(2.5));
  // round 1: 2 + 2 ms drafting + 12 ms; round 2 (d_2 and the bonus pending): 2.5 + 2 ms + 12 ms
  CHECK(p.seconds_per_round == Approx((0.016 + 0.0165) / 2));
  // early stop at 0.5 with g = 3: round 1 drafts 3 (tops 0.9) and keeps 3 + 1; round 2 stops before d_2 (0.3):
  // one draft kept, two forwards, 1 accepted of 1
  cfg.draft_len = 3;
  cfg.early_stop = 0.5;
  p = cost::predict(c, t, cfg, {10, 6});
  CHECK(p.drafted_per_round == Approx(2.0));
  CHECK(p.tokens_per_round == Approx(3.0));  // 4 then 2
  // round 1: 2 + 2 + 2 ms + 13 ms; round 2: 2.5 (pending two) + 2 ms + 11 ms (1 draft verified)
  CHECK(p.seconds_per_round == Approx((0.019 + 0.0155) / 2));
}

TEST_CASE("an n-gram lookup: drafts offered per round, one lookup per round", "[cost]") {
  cost::Costs c = flat_costs();  // the draft table is the lookup: 2 ms per round (a slow lookup, to see it)
  // Three rounds recorded at G = 4: no match (nothing offered), 3 offered and 2 accepted, 4 offered and all
  // accepted.
  constexpr std::array<int, 3> acc{0, 2, 4};
  constexpr std::array<int, 3> offered{0, 3, 4};
  cost::Trace t{4, acc, {}, {}};
  t.offered = offered;
  CHECK(t.acceptance_at(1) == 1.0);         // both rounds that offered d_1 accepted it
  CHECK(t.acceptance_at(3) == Approx(0.5));  // d_3: offered twice, reached twice, accepted once
  CHECK(t.acceptance_at(4) == 1.0);         // d_4: offered once (round 3), accepted
  cost::Config cfg;
  cfg.draft_len = 2;
  // g = 2: round 1 a decode step (1 position, 1 token), round 2 d = 2 (2 of 2 accepted: 3 tokens), round 3
  // d = 2 (3 tokens); each round one lookup (2 ms)
  cost::Prediction p = cost::predict(c, t, cfg, {10, 7});
  CHECK(p.tokens_per_round == Approx(7.0 / 3));
  CHECK(p.drafted_per_round == Approx(4.0 / 3));
  CHECK(p.seconds_per_round == Approx((0.002 + 0.010 + 2 * (0.002 + 0.012)) / 3));
  // g = 4: round 2 offers 3 (verifies 4 positions, 2 accepted: 3 tokens), round 3 offers 4 (d = 4: n = 5,
  // extrapolated 14 ms; 5 tokens); the first round again a decode step
  cfg.draft_len = 4;
  p = cost::predict(c, t, cfg, {10, 9});
  CHECK(p.tokens_per_round == Approx(3.0));
  CHECK(p.seconds_per_round == Approx((0.012 + 0.015 + 0.016) / 3));
}

TEST_CASE("overlapped: drafting ahead during verification saves the next round's drafts", "[cost]") {
  cost::Costs c = flat_costs();
  cost::Trace t;
  t.forced_alpha = 1.0;  // every guess right
  t.forced_episodes = 1;
  cost::Config cfg;
  cfg.draft_len = 3;
  cfg.overlapped = true;
  // verification 13 ms, draft step 2 ms: ceil(13 / 2) = 7 steps wanted, capped at g + 1 = 4 (8 ms < 13 ms);
  // each later round starts with 3 drafts ready: only the verification's 13 ms
  const cost::Prediction p = cost::predict(c, t, cfg, {10, 40});
  CHECK(p.tokens_per_round == Approx(4.0));
  CHECK(p.seconds_per_round == Approx((0.006 + 0.013 + 9 * 0.013) / 10));
  CHECK(p.discarded_per_round == 0.0);
  // contention: the target runs 1.5x slower beside the drafter
  c.target_contended = 1.5;
  const cost::Prediction q = cost::predict(c, t, cfg, {10, 40});
  CHECK(q.seconds_per_round == Approx((0.006 + 10 * 0.0195) / 10));
  // the schedule's measured cost beyond the model (profile.contention[].overlapped): every overlapped round
  // times the scale, the target-only baseline unchanged
  c.overlap_scale = 1.25;
  const cost::Prediction s = cost::predict(c, t, cfg, {10, 40});
  CHECK(s.seconds_per_round == Approx(1.25 * q.seconds_per_round));
  CHECK(s.baseline_tokens_per_second == Approx(q.baseline_tokens_per_second));
  cfg.overlapped = false;  // a sequential round ignores it
  cost::Costs plain = c;
  plain.overlap_scale = 1.0;
  CHECK(cost::predict(c, t, cfg, {10, 40}).seconds_per_round == cost::predict(plain, t, cfg, {10, 40}).seconds_per_round);
  cfg.overlapped = true;
  c.overlap_scale = 1.0;
  // alpha = 0: nothing kept, every round discards what it drafted ahead (4 steps)
  t.forced_alpha = 0.0;
  const cost::Prediction r = cost::predict(c, t, cfg, {10, 40});
  CHECK(r.discarded_per_round == Approx(4.0));
  CHECK(r.tokens_per_round == 1.0);
}

TEST_CASE("the adaptive rule follows the pipeline's", "[cost]") {
  constexpr cost::Costs c = flat_costs();
  cost::Trace t;
  t.forced_episodes = 1;
  cost::Config cfg;
  cfg.adaptive_min = 1;
  cfg.adaptive_max = 8;
  // alpha = 1: the running estimate stays 1 and the rule keeps the longest length (value grows with g)
  t.forced_alpha = 1.0;
  cost::Prediction p = cost::predict(c, t, cfg, {10, 90});
  CHECK(p.mean_draft_len == Approx(8.0));
  // alpha = 0: after the first round (g = 8) the estimate is 0 and the rule drops to 1
  t.forced_alpha = 0.0;
  p = cost::predict(c, t, cfg, {10, 50});
  CHECK(p.mean_draft_len == Approx((8.0 + 49 * 1.0) / 50));
}

namespace {
constexpr double constant_speedup() {
  cost::Costs c = flat_costs();
  cost::Trace t;
  t.forced_alpha = 1.0;
  t.forced_episodes = 1;
  cost::Config cfg;
  cfg.draft_len = 3;
  return cost::predict(c, t, cfg, {10, 100}).speedup;
}
}  // namespace

TEST_CASE("predictions are constant expressions", "[cost]") {
  constexpr double s = constant_speedup();
  STATIC_REQUIRE(s > 1.9 && s < 2.1);  // 0.99 s / 0.487 s
  CHECK(s == Approx(0.99 / (25 * 0.013 + 0.006 + 24 * 0.0065)));
}

TEST_CASE("a split target's time is linear in the cut between its measured ends", "[cost]") {
  // 30 layers; K = 0: 12 ms (all layers on the second device), K = 30: 6 ms (all but the classifier on the first)
  STATIC_REQUIRE(cost::split_seconds(0.012, 0.006, 0, 30) == 0.012);
  STATIC_REQUIRE(cost::split_seconds(0.012, 0.006, 30, 30) == 0.006);
  CHECK(cost::split_seconds(0.012, 0.006, 10, 30) == Approx(0.010));  // 12 - 10/30 * 6
  CHECK(cost::split_seconds(0.012, 0.006, 15, 30) == Approx(0.009));
  CHECK(cost::split_seconds(0.004, 0.004, 7, 30) == Approx(0.004));   // devices alike: the cut costs nothing extra
}
