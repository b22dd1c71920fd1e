// edgespec-profile: measures what the cost model needs (docs/cost-model.md) and writes it as JSON.
//
//   edgespec-profile --target FILE [--draft FILE | --draft-quant T | --draft-skip L,... | --draft-ngram N]...
//                    [--threads N] [--prompts FILE] [--target-device cpu|gpu]... [--draft-device cpu|gpu]...
//                    -o profile.json
//
// For the target on each --target-device: forwards over n = 1..16 positions at several contexts, prefill of short
// inputs, the overheads of a round and of target-only decoding; with both devices, the target split across them at
// both ends of the cut (the hand-over included). For each drafter on each --draft-device: its drafting steps (n = 1,
// 2) and prefill (an n-gram lookup, on the host: its time per round, from the acceptance runs). For each drafter: its
// acceptance on the prompt set, round by round (accepted of G, the draft's top probability per position; an n-gram
// lookup: the drafts it offered). For draft and target on different devices: the slowdown of each while the other
// runs (the overlapped schedule). With --search-skip K: the Pareto front of layer skip sets (acceptance against
// cost), and its best K members profiled as drafters.
#include <algorithm>
#include <atomic>
#include <future>
#include <map>
#include <iostream>
#include <numeric>
#include <thread>

#include <edgespec/planning/profile.hpp>
#include <edgespec/planning/skip_search.hpp>

#include "planning.hpp"
#include "speculation.hpp"

namespace {

using namespace edgespec;
using planning::Curve;
using planning::DrafterProfile;
using planning::ModelTiming;
using planning::Table;
using clock_type = std::chrono::steady_clock;

constexpr const char* kUsage = R"(usage: edgespec-profile --target FILE [--tokenizer FILE] -o profile.json
                        [--draft FILE | --draft-quant T | --draft-skip L,... | --draft-ngram N]...  (each may repeat)
                        [--search-skip K [--search-depth D]] [--target-device cpu|gpu]... [--draft-device cpu|gpu]...
                        [--threads N] [--prompts FILE] [--gen-len N] [--profile-draft-len G]
                        [--contexts C,C,...] [--reps N] [--temp T]

  --target FILE         the target model (GGUF or llama2.c .bin)
  --draft FILE          a draft model sharing the target's vocabulary
  --draft-quant T       a copy of the target's weights in type T (q8_0, q4_0, q4_k, f16, ...)
  --draft-skip L,...    the target with these layers skipped (self-speculative)
  --draft-ngram N       n-gram lookup (no draft model, on the host): what followed the latest earlier occurrence of
                        the last <= N tokens
  --search-skip K       search skip sets (greedy layer removal, acceptance measured teacher-forced on the
                        target's own continuations), keep the Pareto front of acceptance against cost, and
                        profile its K best members (by acceptance per cost) as drafters too
  --search-depth D      the search skips at most D layers (default 6; each step tries every remaining layer)
  --target-device D     where the target is measured: cpu (default) and/or gpu (the OpenCL device); repeat.
                        With both, the target split across them is measured too (at K = 0 and K = n_layers,
                        from each device to the other), so that any --target-split K can be predicted
  --draft-device D      where the drafters are measured; repeat (default: the target devices)
  --threads N           CPU threads (default: all cores); the profile holds for this count only
  --prompts FILE        one prompt per line (default: the shipped examples/prompts/profile.txt)
  --gen-len N           tokens generated per prompt when measuring acceptance and baseline (default 128)
  --profile-draft-len G draft length of the acceptance runs: predictions cover g <= G - 1 (default 12)
  --contexts C,...      contexts of the latency tables (default 0,128,512)
  --reps N              repetitions per timing, the median is kept (default 7)
  --temp T              sampling temperature of the acceptance runs (default 0: greedy)
  --no-acceptance       skip the acceptance (the prompts still run, to calibrate and measure the overheads): for
                        synthetic models, whose drafts are never right; predict with --forced-acceptance A
  -o FILE               the profile (JSON, docs/cost-model.md#profile-format)
)";

double minimum(const std::vector<double>& v) { return v.empty() ? 0.0 : *std::min_element(v.begin(), v.end()); }

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0.0 : v[v.size() / 2];
}

template <class F>
double time_it(F&& f) {
  const auto t0 = clock_type::now();
  f();
  return std::chrono::duration<double>(clock_type::now() - t0).count();
}

// Token ids to feed: the prompts' tokens, repeated (valid ids of real text; what they are does not change the
// time of a forward).
std::vector<std::int32_t> filler(const std::vector<std::vector<std::int32_t>>& prompts, std::size_t n) {
  std::vector<std::int32_t> out;
  while (out.size() < n)
    for (const auto& p : prompts)
      for (const std::int32_t t : p)
        if (out.size() < n) out.push_back(t);
  return out;
}

struct Settings {
  std::vector<double> contexts{0, 128, 512};
  std::vector<double> prefill_lens{8, 16, 32, 64, 128};
  int reps = 7;
};

// forward over n = 1..max_n after each context (the fastest of reps), and prefill of short inputs (median).
template <class Model>
ModelTiming measure(Model& m, const std::string& device, int max_n, const Settings& s,
                    const std::vector<std::int32_t>& ids, Logits rows, bool prefill = true) {
  ModelTiming t;
  t.device = device;
  t.forward.contexts = s.contexts;
  t.forward.max_n = max_n;
  m.reset();
  m.forward(std::span<const std::int32_t>(ids.data(), 4));  // warm up (device programs, caches)
  // Passes over every context and n = 1..max_n (the cache extended from one context to the next, reset after
  // each pass); each entry keeps the fastest of its passes. A shared machine has slow spells of seconds
  // (another tenant's memory traffic made every forward here up to 45% slower, in blocks); a median mixes spells
  // into some entries and not others, and passes that measure one context after another put a whole context
  // in one spell: both distort the ratios the speedup depends on (verifying n against decoding one, context
  // against context). The fastest is each entry in the same, undisturbed state; the profile's calibration
  // measures what real runs add to it.
  const std::size_t nc = s.contexts.size(), mn = static_cast<std::size_t>(max_n);
  std::vector<std::vector<double>> runs(nc * mn);
  for (int r = 0; r < s.reps; ++r) {
    m.reset();
    int filled = 0;
    for (std::size_t ci = 0; ci < nc; ++ci) {
      const int ctx = static_cast<int>(s.contexts[ci]);
      if (ctx > filled)
        m.forward(std::span<const std::int32_t>(ids.data() + filled, static_cast<std::size_t>(ctx - filled)));
      filled = ctx;
      for (int n = 1; n <= max_n; ++n) {
        runs[ci * mn + static_cast<std::size_t>(n - 1)].push_back(
            time_it([&] { m.forward(std::span<const std::int32_t>(ids.data() + ctx, std::size_t(n)), rows); }));
        m.truncate(ctx);
      }
    }
  }
  for (const auto& v : runs) t.forward.seconds.push_back(minimum(v));
  for (const double len : s.prefill_lens) {
    if (!prefill) break;
    std::vector<double> runs;
    for (int r = 0; r < std::max(1, s.reps / 2); ++r) {
      m.reset();
      runs.push_back(time_it([&] { m.forward(std::span<const std::int32_t>(ids.data(), std::size_t(len))); }));
    }
    t.prefill.n.push_back(len);
    t.prefill.seconds.push_back(median(runs));
  }
  m.reset();
  return t;
}

// Calls f(model) with the model of `weights` placed on `device` (skip: those layers skipped).
template <class F>
void with_model(const std::string& device, std::shared_ptr<const LlamaWeights> w, ThreadPool& pool, int ctx,
                const std::vector<int>& skip, F&& f) {
  cli::with_placement(device == "gpu", [&]<class P>(P) {
    if constexpr (P::available) {
      PlacedModel<AnyLlama, P> m(w, pool, ctx);
      if (!skip.empty()) m.set_skipped_layers(skip);
      f(m);
    } else {
      throw_error("this build has no OpenCL: cannot profile on gpu");
    }
  });
}

// Calls f(model) with the target split across the two devices: layers [0, cut) on `first`, the rest and the
// classifier on the other.
template <class F>
void with_split(const std::string& first, std::shared_ptr<const LlamaWeights> w, ThreadPool& pool, int ctx, int cut,
                F&& f) {
#if defined(EDGESPEC_HAS_OPENCL)
  auto run = [&]<class P>(P) {
    PlacedModel<AnyLlama, P> m(w, pool, ctx, KvType::F16, SplitPoint{cut});
    f(m);
  };
  if (first == "gpu") run(Split<OnGPU, OnCPU>{});
  else run(Split<OnCPU, OnGPU>{});
#else
  (void)first, (void)w, (void)pool, (void)ctx, (void)cut, (void)f;
  throw_error("this build has no OpenCL: cannot profile a split target");
#endif
}

std::string skip_label(const std::vector<int>& layers) {
  std::string s;
  for (const int l : layers) s += (s.empty() ? "" : ",") + std::to_string(l);
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  return cli::guarded_main([&] {
    const cli::Args args(argc, argv,
                         {"target", "tokenizer", "draft", "draft-quant", "draft-skip", "draft-ngram", "search-skip",
                          "target-device", "draft-device", "search-depth", "threads", "prompts", "gen-len",
                          "profile-draft-len", "contexts", "reps", "temp", "o"},
                         {"no-acceptance", "help"});
    if (args.has("help")) {
      std::cout << kUsage;
      return 0;
    }
    const std::string out_path = args.required("o");
    const int threads = cli::thread_count(args);
    const int gen_len = args.num<int>("gen-len", 128, 8, 4096);
    const int G = args.num<int>("profile-draft-len", 12, 2, kMaxDraftLen);
    const double temp = args.num<double>("temp", 0.0, 0.0, 10.0);
    auto ngram_order = [](const std::string& n) {  // --draft-ngram N: the longest n-gram matched
      const std::vector<int> v = cli::parse_int_list(n, "draft-ngram");
      ES_CHECK(v.size() == 1 && v[0] >= 1 && v[0] <= 64,
               "option --draft-ngram: give the longest n-gram, one number in 1..64 (got '", n, "')");
      return v[0];
    };
    for (const std::string& n : args.all("draft-ngram")) (void)ngram_order(n);  // before loading anything
    Settings s;
    s.reps = args.num<int>("reps", 7, 1, 100);
    if (args.has("contexts")) {
      s.contexts.clear();
      for (const int c : cli::parse_int_list(args.str("contexts"), "contexts")) s.contexts.push_back(c);
      ES_CHECK(std::is_sorted(s.contexts.begin(), s.contexts.end()) && s.contexts.front() >= 0,
               "option --contexts: give increasing contexts >= 0");
    }
    std::vector<std::string> target_devices = args.all("target-device");
    if (target_devices.empty()) target_devices = {"cpu"};
    std::vector<std::string> draft_devices = args.all("draft-device");
    if (draft_devices.empty()) draft_devices = target_devices;
    for (const auto* list : {&target_devices, &draft_devices})
      for (const std::string& d : *list) {
        ES_CHECK(d == "cpu" || d == "gpu", "device '", d, "' is not cpu or gpu");
        ES_CHECK(d == "cpu" || OnGPU::available, "device gpu: this build has no OpenCL");
      }

    auto target = std::make_shared<const LlamaWeights>(load_weights(args.required("target")));
    const Tokenizer tok = cli::open_tokenizer(*target, args.str("tokenizer"));
    const std::string prompt_file = args.has("prompts") ? args.str("prompts") : cli::shipped_prompts("profile", "prompts");
    std::vector<std::vector<std::int32_t>> prompts;
    double prompt_len = 0;
    for (const std::string& p : cli::read_prompts(prompt_file)) {
      prompts.push_back(tok.encode(p, true, false));
      prompt_len += static_cast<double>(prompts.back().size());
    }
    prompt_len /= static_cast<double>(prompts.size());
    std::size_t longest = 0;
    for (const auto& p : prompts) longest = std::max(longest, p.size());
    const int model_ctx = target->config.max_seq;
    std::erase_if(s.prefill_lens, [&](double n) { return n >= model_ctx; });
    const int ctx = static_cast<int>(std::max(s.contexts.back() + kMaxDraftLen + 1, s.prefill_lens.back()));
    const int max_ctx = std::max<int>(ctx, static_cast<int>(longest) + gen_len + 2 * kMaxDraftLen + 2);
    ES_CHECK(max_ctx <= model_ctx, "the profile needs a context of ", max_ctx, " tokens (the longest prompt ",
             longest, " + --gen-len ", gen_len, " + two rounds, or --contexts up to ", s.contexts.back(),
             "); the target has ", model_ctx, " (lower --contexts or --gen-len)");
    const std::vector<std::int32_t> ids = filler(prompts, static_cast<std::size_t>(ctx));
    ThreadPool pool(threads);

    planning::Profile prof;
    prof.target_file = args.str("target");
    prof.target_name = target->gguf ? target->gguf->find_string("general.name").value_or("") : std::string();
    prof.weight_type = std::string(name(target->config.weight_type));
    prof.n_layers = target->config.n_layers;
    prof.vocab_size = target->config.vocab_size;
    prof.threads = threads;
    prof.temperature = temp;
    prof.workload = {static_cast<int>(prompt_len + 0.5), gen_len};
#if defined(EDGESPEC_HAS_OPENCL)
    if (std::find(target_devices.begin(), target_devices.end(), "gpu") != target_devices.end() ||
        std::find(draft_devices.begin(), draft_devices.end(), "gpu") != draft_devices.end())
      prof.opencl_device = opencl::default_device()->description();
#endif

    // ---- the drafters ----
    struct DrafterSpec {
      std::string kind, spec, label;
      std::shared_ptr<const LlamaWeights> weights;
      std::vector<int> skip;
    };
    std::vector<DrafterSpec> drafters;
    for (const std::string& f : args.all("draft")) {
      auto w = std::make_shared<const LlamaWeights>(load_weights(f));
      if (w->gguf) check_same_vocabulary(vocab_from_gguf(*w->gguf), tok.vocab());
      drafters.push_back({"file", f, std::filesystem::path(f).filename().string(), w, {}});
    }
    for (const std::string& t : args.all("draft-quant")) {
      const DType type = parse_dtype(t);
      drafters.push_back({"quant", t, "target as " + std::string(name(type)),
                          std::make_shared<const LlamaWeights>(requantize(target, type, &pool)), {}});
    }
    for (const std::string& l : args.all("draft-skip")) {
      auto layers = cli::parse_int_list(l, "draft-skip");
      drafters.push_back({"skip", skip_label(layers), "skip " + skip_label(layers), target, layers});
    }
    for (const std::string& n : args.all("draft-ngram")) {
      const int max_n = ngram_order(n);
      drafters.push_back({"ngram", std::to_string(max_n), "n-gram (n <= " + std::to_string(max_n) + ")", nullptr, {}});
    }

    // ---- skip-set search (before the budget estimate: it adds drafters) ----
    if (args.has("search-skip")) {
      const int keep = args.num<int>("search-skip", 3, 1, 16);
      std::cerr << "searching skip sets of " << target->config.n_layers << " layers (teacher-forced acceptance on "
                << prompts.size() << " prompts x 48 tokens)\n";
      cli::Progress progress(1.0);
      const SkipReference ref = make_skip_reference(target, pool, prompts, 48);
      Transformer<> model(ref.weights, pool, ref.longest_input(), ref.kv_type);
      SkipSearchOptions so;
      so.max_skipped = args.num<int>("search-depth", 6, 1, target->config.n_layers - 1);
      auto all = search_skip_sets(model, ref, so, [&](int done, int total) {
        progress.step("skip-set search, candidate " + std::to_string(done) + "/" + std::to_string(total),
                      1.0 / std::max(total, 1));
      });
      progress.finish();
      const auto front = pareto_front(all);
      for (const SkipCandidate& c : all) {
        const bool on = std::any_of(front.begin(), front.end(), [&](const SkipCandidate& f) { return f.layers == c.layers; });
        prof.skip_search.push_back({c.layers, c.agreement, c.cost, on});
      }
      // The front's members with the best agreement per unit of saved cost (Leviathan's value at g = 4 with the
      // cost proxy as the draft/target ratio), at least one layer skipped.
      std::vector<SkipCandidate> ranked;
      for (const SkipCandidate& c : front)
        if (!c.layers.empty()) ranked.push_back(c);
      auto value = [](const SkipCandidate& c) { return cost::expected_tokens(c.agreement, 4) / (4 * c.cost + 1); };
      std::sort(ranked.begin(), ranked.end(), [&](const auto& a, const auto& b) { return value(a) > value(b); });
      for (int i = 0; i < keep && i < static_cast<int>(ranked.size()); ++i)
        drafters.push_back({"skip", skip_label(ranked[i].layers), "skip " + skip_label(ranked[i].layers), target,
                            ranked[i].layers});
    }

    // ---- the work, for the estimate of the time left (units ~ target forwards) ----
    const double table_work = static_cast<double>(s.contexts.size()) * 16 * s.reps;
    // the target on cpu and gpu: the split target too, from each to the other
    const bool both = std::find(target_devices.begin(), target_devices.end(), "cpu") != target_devices.end() &&
                      std::find(target_devices.begin(), target_devices.end(), "gpu") != target_devices.end();
    const double total = static_cast<double>(target_devices.size() + (both ? 4 : 0)) * table_work +
                         static_cast<double>(drafters.size()) *
                             (draft_devices.size() * s.contexts.size() * 2 * s.reps + prompts.size() * gen_len +
                              target_devices.size() * draft_devices.size() * 40);
    cli::Progress progress(total);

    // ---- the target on each device ----
    for (const std::string& dev : target_devices) {
      with_model(dev, target, pool, max_ctx, {}, [&](auto& m) {
        progress.step("target on " + dev + ": forward latency", 0);
        ModelTiming t = measure(m, dev, kMaxDraftLen, s, ids, Logits::All);
        progress.step("target on " + dev + ": forward latency", table_work);
        prof.target.push_back(std::move(t));
      });
    }
    // ---- the target split across the two devices, at both ends of the cut (cost::split_seconds) ----
    if (both)
      for (const std::string& first : target_devices) {
        planning::SplitTiming st;
        st.first = first;
        st.second = first == "cpu" ? "gpu" : "cpu";
        for (const int cut : {0, target->config.n_layers}) {
          const std::string what = "target split " + first + " [0, " + std::to_string(cut) + ") + " + st.second;
          with_split(first, target, pool, max_ctx, cut, [&](auto& m) {
            progress.step(what, 0);
            (cut == 0 ? st.at_0 : st.at_all) = measure(m, first, kMaxDraftLen, s, ids, Logits::All, false).forward;
            progress.step(what, table_work);
          });
        }
        const cost::LatencyTable alone = prof.target_on(st.second)->forward.view();
        for (int n = 1; n <= kMaxDraftLen; ++n) {
          st.handover.n.push_back(n);
          st.handover.seconds.push_back(st.at_0.view().at(0, n) - alone.at(0, n));
        }
        prof.splits.push_back(std::move(st));
      }

    // ---- each drafter: timings per device, acceptance, contention ----
    std::map<std::string, std::vector<double>> baseline_scales;  // per target device, every calibration prompt
    for (const DrafterSpec& d : drafters) {
      DrafterProfile dp;
      dp.kind = d.kind;
      dp.spec = d.spec;
      dp.label = d.label;
      const bool lookup = d.kind == "ngram";
      // the devices this drafter runs on: an n-gram lookup has no model to place, it runs on the host
      const std::vector<std::string> ddevs = lookup ? std::vector<std::string>{"cpu"} : draft_devices;
      for (const std::string& dev : ddevs) {
        if (lookup) {  // its time per round, measured in the acceptance runs below; until then a placeholder
          ModelTiming t;
          t.device = dev;
          t.forward = {s.contexts, 2, std::vector<double>(s.contexts.size() * 2, 1e-6)};
          dp.timings.push_back(std::move(t));
          continue;
        }
        with_model(dev, d.weights, pool, max_ctx, d.skip, [&](auto& m) {
          progress.step(d.label + " on " + dev + ": drafting latency", 0);
          dp.timings.push_back(measure(m, dev, 2, s, ids, Logits::Last));
          progress.step(d.label + " on " + dev + ": drafting latency", s.contexts.size() * 2.0 * s.reps);
        });
      }

      // Acceptance runs cost about gen_len / 3 rounds of G drafting steps and one verification (~4 target
      // forwards) per prompt: correct the estimate with this drafter's measured step.
      const double step_ratio = dp.timings.front().forward.seconds[0] / prof.target.front().forward.seconds[0];
      const double per_prompt = gen_len / 3.0 * (G * step_ratio + 4);
      double apart_pairs = 0;  // placements on two devices: the overlapped calibration's two prompts each
      for (const std::string& dd : ddevs)
        for (const std::string& td : target_devices) apart_pairs += dd != td ? 1 : 0;
      progress.add(static_cast<double>(prompts.size()) * per_prompt +
                   2.0 * (per_prompt + gen_len) *
                       static_cast<double>(ddevs.size() - 1 + target_devices.size() - 1 + apart_pairs));
      // Acceptance: the real pipeline at draft length G in the first placement given, every round recorded;
      // before each prompt, target-only decoding of it. Both calibrate the tables (cost::Costs' scales): what
      // the rounds' drafting and verification and the target-only steps took over what the tables predict.
      // Per prompt, so that a slow spell of the machine weighs on one prompt's ratios, not on the result: each
      // scale is the median of its per-prompt ratios; target-only decoding is the target's alone, so its scale
      // pools every drafter's runs on that target device (below, after the last drafter).
      double rest = 0, sample = 0, verified_rows = 0, rounds = 0;
      // This drafter's real speculative session (edgespec-generate's) at draft length g on one placement, with
      // further edgespec-generate flags (name, value pairs).
      auto session_for = [&](const std::string& cdraft, const std::string& ctarget, int g,
                             std::vector<std::string> extra, bool record_rounds) {
        std::vector<std::string> argv_s = {"edgespec-profile", "--draft-len", std::to_string(g), "--threads",
                                           std::to_string(threads), "--draft-device", cdraft, "--target-device",
                                           ctarget};
        argv_s.insert(argv_s.end(), extra.begin(), extra.end());
        if (d.kind == "file") argv_s.insert(argv_s.end(), {"--draft", d.spec});
        if (d.kind == "quant") argv_s.insert(argv_s.end(), {"--draft-quant", d.spec});
        if (d.kind == "skip") argv_s.insert(argv_s.end(), {"--draft-skip", d.spec});
        if (d.kind == "ngram") argv_s.insert(argv_s.end(), {"--draft-ngram", d.spec});
        std::vector<char*> av;
        for (auto& a : argv_s) av.push_back(a.data());
        const cli::Args sargs(static_cast<int>(av.size()), av.data(),
                              {"draft", "draft-quant", "draft-skip", "draft-ngram", "draft-len", "threads",
                               "draft-device", "target-device", "schedule", "forced-acceptance"}, {});
        PipelineOptions po;
        po.sampling.temperature = static_cast<float>(temp);
        po.max_seq = max_ctx;
        po.record_rounds = record_rounds;
        return cli::SpeculativeSession::from_args(sargs, target, tok, pool, po);
      };
      double lookup_seconds = 0, lookup_rounds = 0;  // n-gram: every lookup of the acceptance runs
      // first: the placement budgeted for every prompt (the estimate above); the others for two prompts each
      auto run_pair = [&](const std::string& cdraft, const std::string& ctarget, bool acceptance, bool first) {
        auto session = session_for(cdraft, ctarget, G, {}, true);
        const bool no_acceptance = !acceptance;
        const cost::LatencyTable ttab = prof.target_on(ctarget)->forward.view();
        const cost::LatencyTable dtab = dp.on(cdraft)->forward.view();
        std::vector<double> verify_scales, draft_scales;
        with_model(ctarget, target, pool, max_ctx, {}, [&](auto& base_model) {
          const std::size_t runs = first ? prompts.size() : std::min<std::size_t>(2, prompts.size());
          const std::size_t budgeted = first ? prompts.size() : 2;
          for (std::size_t pi = 0; pi < runs; ++pi) {  // other placements: two prompts
            double draft_real = 0, draft_table = 0, verify_real = 0, verify_table = 0, base_real = 0, base_table = 0;
            const auto& p = prompts[pi];
            const int n = gen_len;
            Sampler sampler(SamplingParams{});
            GenerationOptions opt;
            opt.n_tokens = n;
            const GenerationResult b = generate(base_model, p, sampler, opt);
            base_real += b.stats.decode_seconds;
            for (int j = 1; j < b.stats.generated_tokens; ++j) base_table += ttab(1, double(p.size() + j - 1));
            session->begin(p);
            const SpeculativeResult r = session->run(n, {});
            if (!no_acceptance) dp.episodes.push_back(static_cast<int>(dp.accepted.size()));
            for (const RoundRecord& rr : r.stats.round_log) {
              draft_real += rr.draft_seconds;
              verify_real += rr.verify_seconds;
              if (lookup) {  // one lookup per round, whatever it found
                lookup_seconds += rr.draft_seconds;
                ++lookup_rounds;
              } else if (rr.drafted > 0) {
                draft_table += dtab(rr.draft_fed, rr.position) + (rr.drafted - 1) * dtab(1, rr.position);
              }
              verify_table += ttab(rr.drafted + 1, rr.position);
              if (no_acceptance) continue;
              if (lookup) {  // every round: the lookup offers up to G drafts, fewer (or none) without a match
                dp.accepted.push_back(rr.accepted);
                dp.offered.push_back(rr.drafted);
                continue;
              }
              if (rr.drafted < G) continue;  // a round cut by the context's end: not at length G
              dp.accepted.push_back(rr.accepted);
              dp.top.insert(dp.top.end(), rr.top.begin(), rr.top.end());
            }
            verify_scales.push_back(verify_real / verify_table);
            if (draft_table > 0) draft_scales.push_back(draft_real / draft_table);
            baseline_scales[ctarget].push_back(base_real / base_table);
            rest += r.stats.gen.decode_seconds - r.stats.draft_seconds - r.stats.verify_seconds -
                    r.stats.sample_seconds - r.stats.record_seconds;
            sample += r.stats.sample_seconds;
            verified_rows += r.stats.drafted + r.stats.rounds;
            rounds += r.stats.rounds;
            progress.step(d.label + ": acceptance", per_prompt + gen_len);
          }
          if (budgeted > runs)
            progress.step(d.label + ": acceptance", (per_prompt + gen_len) * static_cast<double>(budgeted - runs));
        });
        dp.calibration.push_back({cdraft, ctarget, median(draft_scales), median(verify_scales), 1.0});
      };
      // The first placement given records the acceptance too; then one more placement for each device not yet
      // calibrated in its role (draft or target), placements on two devices first.
      dp.draft_len = args.has("no-acceptance") ? 0 : G;
      run_pair(ddevs.front(), target_devices.front(), !args.has("no-acceptance"), true);
      for (const bool apart : {true, false})
        for (const std::string& dd : ddevs)
          for (const std::string& td : target_devices) {
            if ((dd != td) != apart || dp.calibrated(dd, td)) continue;
            bool draft_known = false, target_known = false;
            for (const planning::Calibration& c : dp.calibration) {
              draft_known |= c.draft_device == dd;
              target_known |= c.target_device == td;
            }
            if (!draft_known || !target_known) run_pair(dd, td, false, false);
          }
      // An n-gram lookup's time per round, whatever it found and at every context: what its rounds measured
      // (it was the placeholder above, so its calibration is 1 by construction).
      if (lookup) {
        const double per_round = lookup_rounds > 0 ? lookup_seconds / lookup_rounds : 0.0;
        for (ModelTiming& t : dp.timings) std::fill(t.forward.seconds.begin(), t.forward.seconds.end(), per_round);
        for (planning::Calibration& c : dp.calibration) c.draft = 1.0;
      }
      // Round overheads, measured in the first drafter's runs; the same host work follows any verification.
      if (&d == &drafters.front())
        for (ModelTiming& t : prof.target) {
          t.per_round = std::max(0.0, rest / rounds);
          t.per_position = sample / verified_rows;
        }

      // The overlapped schedule as it runs: the real Overlapped pipeline (g = 3, each draft accepted with
      // probability kOverlapAlpha, so that the acceptance is the model's own) on two prompts, its decode time over
      // the model's prediction for the same prompt lengths and tokens with this placement's contention factors
      // (the last entry of prof.contention); the median of the two.
      auto overlap_scale = [&](const std::string& ddev, const std::string& tdev) {
        constexpr double kOverlapAlpha = 0.8;
        const int g = std::clamp(G - 1, 1, 3);
        auto session = session_for(ddev, tdev, g,
                                   {"--schedule", "overlapped", "--forced-acceptance", std::to_string(kOverlapAlpha)},
                                   false);
        cost::Config cfg;
        cfg.draft_len = g;
        cfg.overlapped = true;
        cost::Trace trace = dp.trace();
        trace.forced_alpha = kOverlapAlpha;
        const cost::Costs costs = planning::costs_for(prof, dp, ddev, *prof.target_on(tdev), tdev, true);
        std::vector<double> ratios;
        for (std::size_t pi = 0; pi < std::min<std::size_t>(2, prompts.size()); ++pi) {
          session->begin(prompts[pi]);
          const SpeculativeResult r = session->run(gen_len, {});
          const cost::Prediction pred = cost::predict(
              costs, trace, cfg, cost::Workload{static_cast<int>(prompts[pi].size()), r.stats.gen.generated_tokens});
          if (r.stats.gen.decode_seconds > 0 && pred.tokens_per_second > 0)
            ratios.push_back(pred.tokens_per_second / r.stats.gen.decode_tokens_per_second());
        }
        return ratios.empty() ? 1.0 : median(ratios);
      };
      // Contention: each side's forward time while the other device runs its own work.
      for (const std::string& tdev : target_devices)
        for (const std::string& ddev : ddevs) {
          if (tdev == ddev || lookup) continue;  // (no overlapped schedule without a draft model)
          with_model(tdev, target, pool, max_ctx, {}, [&](auto& tm) {
            with_model(ddev, d.weights, pool, max_ctx, d.skip, [&](auto& dm) {
              const int c = static_cast<int>(s.contexts[s.contexts.size() / 2]);
              tm.reset();
              dm.reset();
              tm.forward(std::span<const std::int32_t>(ids.data(), static_cast<std::size_t>(c + 1)));
              dm.forward(std::span<const std::int32_t>(ids.data(), static_cast<std::size_t>(c + 1)));
              auto verify_once = [&] {
                tm.forward(std::span<const std::int32_t>(ids.data(), 5), Logits::All);
                tm.truncate(c + 1);
              };
              auto draft_once = [&] {
                dm.forward(std::span<const std::int32_t>(ids.data(), 1));
                dm.truncate(c + 1);
              };
              // alone, then beside the other looping on its device
              auto timed = [&](auto&& op, int n) {
                std::vector<double> v;
                for (int i = 0; i < n; ++i) v.push_back(time_it(op));
                return median(v);
              };
              auto beside = [&](auto&& op, auto&& other, int n) {
                std::atomic<bool> stop{false};
                auto bg = std::async(std::launch::async, [&] {
                  while (!stop.load()) other();
                });
                const double t = timed(op, n);
                stop = true;
                bg.get();
                return t;
              };
              const int n = std::max(5, s.reps * 2);
              planning::Contention k;
              k.drafter = d.label;
              k.draft_device = ddev;
              k.target_device = tdev;
              const double tv = timed(verify_once, n), td = timed(draft_once, n);
              k.target = std::max(1.0, beside(verify_once, draft_once, n) / tv);
              k.draft = std::max(1.0, beside(draft_once, verify_once, n) / td);
              prof.contention.push_back(k);
              progress.step(d.label + ": contention " + ddev + "/" + tdev, 40);
            });
          });
          prof.contention.back().overlapped = overlap_scale(ddev, tdev);
          progress.step(d.label + ": overlapped " + ddev + "/" + tdev, 2.0 * (per_prompt + gen_len));
        }
      prof.drafters.push_back(std::move(dp));
    }
    for (DrafterProfile& d : prof.drafters)
      for (planning::Calibration& c : d.calibration) c.baseline = median(baseline_scales[c.target_device]);
    progress.finish();
    planning::save_profile(prof, out_path);
    std::cerr << "wrote " << out_path << ": target on " << target_devices.size() << " device(s), "
              << prof.drafters.size() << " drafter(s)";
    for (const DrafterProfile& d : prof.drafters) std::cerr << "; " << d.label << " alpha " << d.alpha();
    std::cerr << "\n";
    return 0;
  });
}
