// The analytical cost model of speculative decoding: from measured latencies (a profile, profile.hpp) and the
// drafter's measured acceptance, predict tokens per round, time per round, decode tokens/s, end-to-end latency
// and the speedup over target-only decoding for one configuration (draft length or adaptive policy, early stop,
// schedule), before anything is compiled. docs/cost-model.md derives every term.
//
// Everything here is constexpr over spans (std::array data works in a constant expression; see
// tests/test_cost_model.cpp), and the pipeline's rules are mirrored exactly:
//
//   round (sequential):   T_draft(pending) + (f - 1) T_draft(1)  +  T_target(d + 1, c)  +  o_round + o_pos (d + 1)
//                         (an n-gram lookup: T_draft(1) is one lookup, once per round, whatever it finds)
//   round (overlapped):   as above, but the target's forward runs while the drafter drafts ahead on the other
//                         device: max(T_target' , s T_draft'(1)) with s = min(g + 1, ceil(T_target' / T_draft'));
//                         the next round starts with s - 1 drafts when all d were accepted and the bonus token was
//                         the drafter's guess (primes: times under contention); the whole round times the
//                         measured overlap_scale (the schedule's hand-offs)
//   tokens per round:     k + 1, k = min(accepted at draft length G, d)
//
// where d is the number of drafts (g, or fewer with early stop or when the drafter offers fewer: the n-gram lookup
// drafts what followed an earlier occurrence, up to g tokens, none without one), f the draft forwards (d, plus one
// when early stop ended the round), c the context. Rounds are replayed from the profiled ones (the acceptance pattern
// of each round at the profiled draft length G >= g + 1), so acceptance per position, early stop and the adaptive
// rule's running estimates are those of real text; with a forced acceptance alpha the rounds are drawn i.i.d. and the
// closed form E = (1 - alpha^(g+1)) / (1 - alpha) holds (expected_tokens).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>

namespace edgespec::cost {

// ---- acceptance ----

// Expected tokens per round with i.i.d. per-token acceptance alpha and g drafts (Leviathan et al. 2023, eq. 1):
//   E = 1 + a + a^2 + ... + a^g = (1 - a^(g+1)) / (1 - a);   a = 1: g + 1;   a = 0: 1.
constexpr double expected_tokens(double alpha, int g) {
  double e = 0.0, p = 1.0;
  for (int i = 0; i <= g; ++i, p *= alpha) e += p;
  return e;
}

// With acceptance per draft position, a_i = P(d_i accepted | d_1 .. d_{i-1} accepted), i = 1..g:
//   E = 1 + a_1 + a_1 a_2 + ... + a_1 a_2 ... a_g.
constexpr double expected_tokens(std::span<const double> a, int g) {
  double e = 1.0, p = 1.0;
  for (int i = 0; i < g && i < static_cast<int>(a.size()); ++i) e += (p *= a[static_cast<std::size_t>(i)]);
  return e;
}

// ---- latency of one model on one device ----

// Seconds of a forward over n positions (1..max_n) after `context` cached positions, measured at a few contexts:
// seconds[i * max_n + (n - 1)] at contexts[i] (increasing). Linear in the context between measured ones (the
// attention reads grow linearly), extrapolated from the nearest two beyond (never below half the nearest
// measurement); n beyond max_n from the last two n.
struct LatencyTable {
  std::span<const double> contexts;
  std::span<const double> seconds;
  int max_n = 0;

  [[nodiscard]] constexpr double at(std::size_t ci, int n) const {
    const int m = std::min(n, max_n);
    const double t = seconds[ci * static_cast<std::size_t>(max_n) + static_cast<std::size_t>(m - 1)];
    if (n <= max_n || max_n < 2) return t;
    const double prev = seconds[ci * static_cast<std::size_t>(max_n) + static_cast<std::size_t>(max_n - 2)];
    return t + (t - prev) * (n - max_n);
  }
  [[nodiscard]] constexpr double operator()(int n, double context) const {
    if (contexts.size() == 1) return at(0, n);
    std::size_t hi = 1;  // the segment [hi - 1, hi] holding `context`, or the nearest end segment
    while (hi + 1 < contexts.size() && contexts[hi] < context) ++hi;
    const double c0 = contexts[hi - 1], c1 = contexts[hi];
    const double w = c1 > c0 ? (context - c0) / (c1 - c0) : 0.0;
    const double t0 = at(hi - 1, n);
    return std::max(t0 + w * (at(hi, n) - t0), 0.5 * t0);
  }
};

// Seconds of a prefill over n positions from an empty cache, measured at a few n (increasing); linear between
// and beyond (the last two points).
struct PrefillCurve {
  std::span<const double> n;
  std::span<const double> seconds;

  [[nodiscard]] constexpr double operator()(double len) const {
    if (len <= 0 || n.empty()) return 0.0;
    if (n.size() == 1) return seconds[0] * len / n[0];
    std::size_t hi = 1;
    while (hi + 1 < n.size() && n[hi] < len) ++hi;
    if (len < n[0]) return seconds[0] * len / n[0];
    const double w = (len - n[hi - 1]) / (n[hi] - n[hi - 1]);
    return seconds[hi - 1] + w * (seconds[hi] - seconds[hi - 1]);
  }
};

// A target split across two devices (SplitModel: layers [0, K) on the first, layers [K, L) and the classifier on
// the second, the (n, dim) hidden states handed over at the cut). Its layers are alike, so a forward's time is
// linear in K between the two measured ends:
//   T(n, c; K) = T(n, c; 0) + K / L (T(n, c; L) - T(n, c; 0))
// K = 0: the embedding alone on the first device; K = L: the classifier alone on the second. Both ends pay the
// hand-over, so every K does.
constexpr double split_seconds(double at_0, double at_all, int cut, int n_layers) {
  return n_layers <= 0 ? at_0 : at_0 + static_cast<double>(cut) / n_layers * (at_all - at_0);
}

struct ModelCost {
  LatencyTable forward;  // target: n = 1..16 (verification); draft: n = 1, 2 (a drafting step)
  PrefillCurve prefill;
};

// What one placement (draft on one device, target on one) costs, besides the forwards.
struct Costs {
  ModelCost target;
  ModelCost draft;
  double per_round = 0.0;     // o_round: bookkeeping, truncation, per round (seconds)
  double per_position = 0.0;  // o_pos: verification arithmetic (an argmax over the vocabulary) per verified row
  // Overlapped: a forward's time when the other device runs at the same time, over its time alone (>= 1 where the
  // two share cores or a memory bus).
  double target_contended = 1.0;
  double draft_contended = 1.0;
  // Calibration: measured in real rounds and real target-only decoding, run alternately, over what the tables
  // predict for them (a forward inside a pipeline is not always one in a loop of its own, and the machine's
  // speed drifts between measurements): drafting steps, verifications, target-only decoding steps (their sampling
  // and bookkeeping included).
  double draft_scale = 1.0, verify_scale = 1.0, baseline_scale = 1.0;
  // Overlapped: the real schedule's time over what the rounds above predict for it (its threads' hand-offs),
  // measured by the profiler on the same placement; multiplies every overlapped round.
  double overlap_scale = 1.0;
};

// ---- acceptance data ----

// Profiled rounds: each round at draft length G accepted `accepted[r]` of its G drafts (0..G), and the draft's
// top probability at each position was top[r * G + i] (empty: not recorded; early stop then never fires).
// `episodes` holds the first round of each prompt (empty: one). `offered[r]`: the drafts the drafter offered in
// round r (0..G; the n-gram lookup's, which may be fewer than G), empty: G in every round. With forced_alpha >= 0
// there are no recorded rounds: each draft token is accepted with probability forced_alpha, drawn from a fixed
// seed.
struct Trace {
  int draft_len = 0;
  std::span<const int> accepted;
  std::span<const float> top;
  std::span<const int> episodes;
  double forced_alpha = -1.0;
  int forced_episodes = 32;
  std::span<const int> offered = {};

  [[nodiscard]] constexpr int offered_at(std::size_t r) const noexcept {
    return offered.empty() ? draft_len : offered[r];
  }

  [[nodiscard]] constexpr bool forced() const noexcept { return forced_alpha >= 0.0; }
  [[nodiscard]] constexpr int episode_count() const noexcept {
    return forced() ? forced_episodes : std::max<int>(1, static_cast<int>(episodes.size()));
  }
  [[nodiscard]] constexpr int episode_begin(int e) const noexcept {
    return episodes.empty() ? 0 : episodes[static_cast<std::size_t>(e)];
  }
  [[nodiscard]] constexpr int episode_end(int e) const noexcept {
    return e + 1 < static_cast<int>(episodes.size()) ? episodes[static_cast<std::size_t>(e) + 1]
                                                     : static_cast<int>(accepted.size());
  }
  // The profiled acceptance per position, a_i = P(k >= i | k >= i - 1, d_i offered), i = 1..G (forced: alpha
  // each).
  [[nodiscard]] constexpr double acceptance_at(int i) const {
    if (forced()) return forced_alpha;
    int reached = 0, passed = 0;
    for (std::size_t r = 0; r < accepted.size(); ++r) {
      if (offered_at(r) < i) continue;
      reached += accepted[r] >= i - 1;
      passed += accepted[r] >= i;
    }
    return reached > 0 ? static_cast<double>(passed) / reached : 0.0;
  }
};

// ---- configuration and prediction ----

struct Config {
  int draft_len = 4;                       // g (adaptive: unused, the rule starts at adaptive_max)
  int adaptive_min = 0, adaptive_max = 0;  // both > 0: AdaptiveDraftLen<min, max>
  double early_stop = 0.0;                 // EarlyStop threshold on the draft's top probability; 0: off
  bool overlapped = false;                 // the Overlapped schedule (draft and target on different devices)

  [[nodiscard]] constexpr bool adaptive() const noexcept { return adaptive_min > 0 && adaptive_max > 0; }
};

struct Workload {
  int prompt_len = 32;  // P: prompt tokens
  int gen_len = 128;    // G: tokens generated
};

struct Prediction {
  double tokens_per_round = 0.0;          // E[k + 1]
  double seconds_per_round = 0.0;
  double draft_seconds_per_round = 0.0;   // drafting alone (sequential part)
  double verify_seconds_per_round = 0.0;  // the target's forward (overlapped: with the drafting ahead)
  double drafted_per_round = 0.0;
  double discarded_per_round = 0.0;       // overlapped: drafted ahead and thrown away
  double mean_draft_len = 0.0;            // adaptive: the rule's average choice
  double tokens_per_second = 0.0;         // decode, as edgespec-generate --json reports it
  double baseline_tokens_per_second = 0.0;
  double speedup = 0.0;                   // decode: baseline time / speculative time for the same tokens
  double latency_seconds = 0.0;           // prefill of both models + decode of gen_len tokens
  double baseline_latency_seconds = 0.0;  // target prefill + target-only decode
  double latency_speedup = 0.0;
};

namespace detail {
// splitmix64: forced acceptance draws, the same in every build.
struct SplitMix {
  std::uint64_t s;
  constexpr double uniform() noexcept {
    std::uint64_t z = (s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return static_cast<double>((z ^ (z >> 31)) >> 11) * 0x1.0p-53;
  }
};
constexpr double pow_int(double a, int n) {
  double p = 1.0;
  for (int i = 0; i < n; ++i) p *= a;
  return p;
}
constexpr int ceil_div(double num, double den) {  // ceil(num / den) for num, den > 0, without <cmath>
  const double q = num / den;
  const int t = static_cast<int>(q);
  return t + (static_cast<double>(t) < q ? 1 : 0);
}
}  // namespace detail

// Replays the rounds of every profiled prompt while generating w.gen_len tokens after a prompt of w.prompt_len,
// following the pipeline's rules (see the top of this file); sums time and tokens (renewal-reward: the rate is
// the ratio of the sums).
constexpr Prediction predict(const Costs& c, const Trace& trace, const Config& cfg, const Workload& w) {
  Prediction out;
  const int G = trace.forced() ? 17 : trace.draft_len;  // forced: up to kMaxDraftLen + 1 positions
  const bool lookup = !trace.offered.empty();           // an n-gram lookup drafts (no draft model)
  double total_time = 0, total_tokens = 0, total_rounds = 0, total_drafted = 0, total_discarded = 0;
  double total_draft = 0, total_verify = 0, total_len = 0, base_time = 0;
  detail::SplitMix rng{0x5eed};
  const int episodes = trace.episode_count();
  for (int e = 0; e < episodes; ++e) {
    const int first = trace.forced() ? 0 : trace.episode_begin(e);
    const int last = trace.forced() ? 1 : trace.episode_end(e);
    if (last <= first) continue;
    int r = first;
    // the pipeline's state
    int gamma = cfg.adaptive() ? cfg.adaptive_max : cfg.draft_len;
    double alpha_est = -1.0, cost_ratio = 0.1, cum_draft = 0, cum_verify = 0;
    int cum_drafted = 0, rounds = 0, pre = 0;
    bool pending_two = false;
    double pos = w.prompt_len;  // the target's context after this round's `last` token is fed
    int produced = 0;
    while (produced < w.gen_len) {
      // this round's acceptance pattern at draft length G
      int k_full = 0, offer = G;
      const float* top = nullptr;
      if (trace.forced()) {
        while (k_full < G && rng.uniform() < trace.forced_alpha) ++k_full;
      } else {
        k_full = trace.accepted[static_cast<std::size_t>(r)];
        offer = trace.offered_at(static_cast<std::size_t>(r));
        if (!trace.top.empty()) top = trace.top.data() + static_cast<std::size_t>(r) * static_cast<std::size_t>(G);
        if (++r == last) r = first;
      }
      const int g = std::min(gamma, G);
      // ---- draft ----
      int d = std::min(g, offer), forwards = 0;
      double draft_t = 0;
      const double td1 = c.draft_scale * c.draft.forward(1, pos);
      if (pre > 0) {
        const int used = std::min(pre, g);
        forwards = g - used;
        draft_t = forwards * td1;
      } else if (lookup) {  // one lookup per round, whatever it finds: T_draft(1) is its time
        forwards = 0;
        draft_t = td1;
      } else {
        if (top != nullptr && cfg.early_stop > 0)
          for (int i = 1; i < g; ++i)
            if (top[i] < cfg.early_stop) {
              d = i;  // the forward that computed q_{i+1} ran; d_{i+1} was not kept
              break;
            }
        forwards = d < g ? d + 1 : d;
        draft_t = forwards > 0 ? c.draft_scale * c.draft.forward(pending_two ? 2 : 1, pos) + (forwards - 1) * td1 : 0.0;
      }
      const int k = std::min(k_full, d);
      // ---- verify (and, overlapped, draft ahead) ----
      double verify_t = c.verify_scale * c.target.forward(d + 1, pos);
      int ahead = 0;
      if (cfg.overlapped && d > 0) {
        const double tv = verify_t * c.target_contended, td = td1 * c.draft_contended;
        ahead = std::min(gamma + 1, std::max(1, detail::ceil_div(tv, td)));
        verify_t = std::max(tv, ahead * td);
      }
      const bool kept = cfg.overlapped && k == d && d > 0 && ahead >= 2 && k_full >= std::min(d + 1, G);
      const double overhead = c.per_round + c.per_position * (d + 1);
      const double round_t = (draft_t + verify_t + overhead) * (cfg.overlapped ? c.overlap_scale : 1.0);
      int tokens = k + 1;
      tokens = std::min(tokens, w.gen_len - produced);
      // ---- state for the next round ----
      pre = kept ? ahead - 1 : 0;
      pending_two = !cfg.overlapped && !lookup && k == d && forwards == d && d > 0;
      if (cfg.overlapped && !kept) total_discarded += ahead;
      ++rounds;
      cum_draft += draft_t;
      cum_verify += verify_t;
      cum_drafted += d;
      if (cfg.adaptive() && d > 0) {  // Pipeline::adapt
        const double trial = k < d ? static_cast<double>(k) / (k + 1) : 1.0;
        alpha_est = alpha_est < 0 ? trial : 0.8 * alpha_est + 0.2 * trial;
        if (cum_verify > 0 && cum_drafted > 0) cost_ratio = (cum_draft / cum_drafted) / (cum_verify / rounds);
        const double a = std::min(alpha_est, 0.999);
        double best = -1.0;
        for (int len = cfg.adaptive_min; len <= cfg.adaptive_max; ++len) {
          const double value = (1.0 - detail::pow_int(a, len + 1)) / (1.0 - a) / (len * cost_ratio + 1.0);
          if (value > best) {
            best = value;
            gamma = len;
          }
        }
      }
      total_time += round_t;
      total_draft += draft_t;
      total_verify += verify_t;
      total_tokens += tokens;
      total_drafted += d;
      total_len += g;
      produced += tokens;
      pos += k + 1;
    }
    total_rounds += rounds;
    // target-only decoding of the same tokens: the first token comes from the prefill, then gen_len - 1 steps
    for (int j = 1; j < w.gen_len; ++j) base_time += c.baseline_scale * c.target.forward(1, w.prompt_len + j - 1);
  }
  if (total_rounds == 0 || total_time <= 0) return out;
  out.tokens_per_round = total_tokens / total_rounds;
  out.seconds_per_round = total_time / total_rounds;
  out.draft_seconds_per_round = total_draft / total_rounds;
  out.verify_seconds_per_round = total_verify / total_rounds;
  out.drafted_per_round = total_drafted / total_rounds;
  out.discarded_per_round = total_discarded / total_rounds;
  out.mean_draft_len = total_len / total_rounds;
  out.tokens_per_second = total_tokens / total_time;
  out.baseline_tokens_per_second = base_time > 0 ? total_tokens / base_time : 0.0;
  out.speedup = base_time / total_time;
  const double n = static_cast<double>(episodes);
  const double prefill = c.target.prefill(w.prompt_len - 1) + c.draft.prefill(w.prompt_len - 1);
  out.latency_seconds = prefill + total_time / n;
  out.baseline_latency_seconds = c.target.prefill(w.prompt_len) + base_time / n;
  out.latency_speedup = out.baseline_latency_seconds / out.latency_seconds;
  return out;
}

}  // namespace edgespec::cost
