// edgespec-plan: ranks speculative configurations by the speedup the cost model predicts from a profile, prints
// the Pipeline type and the edgespec-generate flags of the best, predicts one given configuration, validates
// predictions against real runs, writes the chosen configuration as a header, and draws the plots.
//
//   edgespec-plan --profile profile.json [--prompt-len P] [--gen-len G] [--top N] [--json]
//   edgespec-plan --profile profile.json --predict -- <edgespec-generate flags>
//   edgespec-plan --profile profile.json --validate [--validate-top N | --validate-flags FILE] [--json]
//   edgespec-plan --profile profile.json --emit-header FILE      --svg FILE
#include <algorithm>
#include <cmath>
#include <ctime>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <sstream>

#include <edgespec/planning/profile.hpp>

#include "planning.hpp"
#include "speculation.hpp"
#include "svg_chart.hpp"

namespace {

using namespace edgespec;
using planning::DrafterProfile;
using planning::Profile;
using nlohmann::json;

constexpr const char* kUsage = R"(usage: edgespec-plan --profile profile.json [options]

  --profile FILE        what edgespec-profile measured
  --prompt-len P        prompt tokens of the workload (default: the profiled prompts' mean)
  --gen-len G           tokens generated (default: the profile's)
  --rank R              speedup (decode, default) or latency (end-to-end for P and G: prefill + decode)
  --top N               configurations listed (default 10)
  --forced-acceptance A predict as if every draft token were accepted with probability A (benchmarks of
                        realistic sizes with synthetic models; edgespec-generate --forced-acceptance)
  --json                print JSON instead of a table
  --predict -- FLAGS    predict exactly the configuration these edgespec-generate flags run (one JSON object:
                        predicted_speedup, predicted_tokens_per_second, ...)
  --validate            run the top configurations with edgespec-generate on held-out prompts and print
                        predicted against measured speedup and the mean absolute relative error
  --validate-top N      how many (default 5)
  --validate-flags FILE validate these configurations instead: one line of edgespec-generate flags each
                        (drafter, draft length, devices, schedule; --model and --threads come from the profile)
  --validate-reps R     runs of each prompt per configuration (default 2)
  --prompts FILE        the held-out prompts (default: the shipped examples/prompts/validate.txt)
  --emit-header FILE    write the best configuration as a header (a Pipeline alias and its options)
  --validation FILE     a saved `--validate --json` output, for --svg without running the validation again
  --svg FILE            plots: predicted vs measured speedup (with --validate), speedup against draft length
                        per drafter, and the skip sets' Pareto front (profiles made with --search-skip)
)";

// One configuration: a drafter in a placement with a draft-length policy and a schedule.
struct Candidate {
  int drafter = 0;
  std::string draft_device = "cpu";
  planning::TargetPlacement target;  // a device, or split across both (--target-split K)
  cost::Config cfg;
  double forced = -1.0;  // >= 0: forced acceptance (edgespec-generate --forced-acceptance)
  cost::Prediction pred;
};

std::string number(double x, int digits = 3) {
  std::ostringstream s;
  s << std::setprecision(digits) << x;
  return s.str();
}

// "target on cpu", "target layers [0, 15) on cpu, the rest on gpu", "target on cpu, classifier on gpu"
std::string target_place(const Profile& p, const planning::TargetPlacement& t) {
  if (!t.split()) return "target on " + t.device;
  if (t.cut == p.n_layers) return "target on " + t.device + ", classifier on " + t.other();
  return "target layers [0, " + std::to_string(t.cut) + ") on " + t.device + ", the rest on " + t.other();
}

// The edgespec-generate flags of a target placement.
std::string target_flags(const planning::TargetPlacement& t) {
  return "--target-device " + t.device + (t.split() ? " --target-split " + std::to_string(t.cut) : "");
}

std::string describe(const Profile& p, const Candidate& c) {
  const DrafterProfile& d = p.drafters[static_cast<std::size_t>(c.drafter)];
  std::string s = d.label + " on " + c.draft_device + ", " + target_place(p, c.target) + ", ";
  s += c.cfg.adaptive() ? "adaptive " + std::to_string(c.cfg.adaptive_min) + ":" + std::to_string(c.cfg.adaptive_max)
                        : "g " + std::to_string(c.cfg.draft_len);
  if (c.cfg.early_stop > 0) s += ", early stop " + number(c.cfg.early_stop, 2);
  if (c.cfg.overlapped) s += ", overlapped";
  if (c.forced >= 0) s += ", forced alpha " + number(c.forced, 3);
  return s;
}

// The edgespec-generate flags of a candidate, without --model and --threads (from the profile).
std::string config_flags(const Profile& p, const Candidate& c) {
  const DrafterProfile& d = p.drafters[static_cast<std::size_t>(c.drafter)];
  std::string s = d.kind == "file" ? "--draft " + cli::shell_quote(d.spec) : d.flag();
  s += c.cfg.adaptive() ? " --adaptive " + std::to_string(c.cfg.adaptive_min) + ":" + std::to_string(c.cfg.adaptive_max)
                        : " --draft-len " + std::to_string(c.cfg.draft_len);
  if (c.cfg.early_stop > 0) s += " --early-stop " + number(c.cfg.early_stop, 2);
  if (!d.lookup()) s += " --draft-device " + c.draft_device;  // (an n-gram lookup has no model to place)
  s += " " + target_flags(c.target);
  if (c.cfg.overlapped) s += " --schedule overlapped";
  if (c.forced >= 0) s += " --forced-acceptance " + number(c.forced, 3);
  return s;
}

// All the flags that run a candidate.
std::string flags(const Profile& p, const Candidate& c) {
  return "--model " + cli::shell_quote(p.target_file) + " " + config_flags(p, c) + " --threads " +
         std::to_string(p.threads);
}

std::string pipeline_type(const Profile& p, const Candidate& c) {
  const DrafterProfile& d = p.drafters[static_cast<std::size_t>(c.drafter)];
  auto place = [](const std::string& dev) { return dev == "gpu" ? "edgespec::OnGPU" : "edgespec::OnCPU"; };
  std::string draft = "edgespec::Draft<";
  if (d.lookup()) {
    draft += "edgespec::NGram<" + d.spec + ">>";  // on the host: no placement
  } else {
    if (d.kind == "skip") {
      std::string layers = d.spec;
      for (std::size_t i = 0; (i = layers.find(',', i)) != std::string::npos; i += 2) layers.replace(i, 1, ", ");
      draft += "edgespec::SkipLayers<" + layers + ">, ";
    }
    draft += std::string(place(c.draft_device)) + ">";
  }
  const std::string target_place = c.target.split() ? std::string("edgespec::Split<") + place(c.target.device) + ", " +
                                                         place(c.target.other()) + ">"
                                                   : place(c.target.device);
  std::string t = "edgespec::Pipeline<" + draft + ", edgespec::Target<" + target_place + ">, ";
  t += c.cfg.adaptive() ? "edgespec::AdaptiveDraftLen<" + std::to_string(c.cfg.adaptive_min) + ", " +
                              std::to_string(c.cfg.adaptive_max) + ">"
                        : "edgespec::DraftLen<" + std::to_string(c.cfg.draft_len) + ">";
  if (c.cfg.early_stop > 0) t += ", edgespec::EarlyStop<" + std::to_string(std::lround(c.cfg.early_stop * 100)) + ">";
  if (c.cfg.overlapped) t += ", edgespec::Overlapped";
  return t + ">";
}

cost::Trace trace_of(const DrafterProfile& d, double forced) {
  cost::Trace t = d.trace();
  if (forced >= 0) t.forced_alpha = forced;
  return t;
}

void predict(const Profile& p, Candidate& c, const cost::Workload& w) {
  const DrafterProfile& d = p.drafters[static_cast<std::size_t>(c.drafter)];
  const planning::ModelTiming target = planning::target_timing(p, c.target);
  const cost::Costs costs = planning::costs_for(p, d, c.draft_device, target, c.target.device, c.cfg.overlapped);
  ES_CHECK(c.forced >= 0 || !d.accepted.empty(), "drafter '", d.label, "' was profiled without acceptance "
           "(--no-acceptance): predict with --forced-acceptance A");
  c.pred = cost::predict(costs, trace_of(d, c.forced), c.cfg, w);
}

// Every configuration the profile can predict: each drafter on each of its devices with the target on each of
// its, fixed g in 1..G-1, adaptive ranges, early stop thresholds, and the overlapped schedule where the two
// devices differ; where the profile measured the split target, the target split from each device at the middle
// layer and before the classifier (a split's time is linear in the cut, cost::split_seconds, so the best cut is
// one of the ends: the classifier alone on the other device, or the whole target there).
std::vector<Candidate> enumerate(const Profile& p, const cost::Workload& w, double forced) {
  std::vector<Candidate> out;
  for (std::size_t i = 0; i < p.drafters.size(); ++i) {
    const DrafterProfile& d = p.drafters[i];
      if (forced < 0 && d.accepted.empty()) continue;  // profiled without acceptance
    const int max_g = forced >= 0 ? kMaxDraftLen : std::min(kMaxDraftLen, d.draft_len - 1);
    std::vector<planning::TargetPlacement> places;
    for (const planning::ModelTiming& tt : p.target) places.push_back({tt.device, -1});
    for (const planning::SplitTiming& st : p.splits)
      for (const int cut : {p.n_layers / 2, p.n_layers}) places.push_back({st.first, cut});
    for (const planning::ModelTiming& dt : d.timings)
      for (const planning::TargetPlacement& tp : places)
        for (const bool overlapped : {false, true}) {
          if (overlapped && (tp.split() || dt.device == tp.device || !p.contention_for(d.label, dt.device, tp.device)))
            continue;
          Candidate base;
          base.forced = forced;
          base.drafter = static_cast<int>(i);
          base.draft_device = dt.device;
          base.target = tp;
          base.cfg.overlapped = overlapped;
          for (int g = 1; g <= max_g; ++g)
            for (const double es : {0.0, 0.2, 0.4, 0.6, 0.8}) {
              if (es > 0 && (g < 2 || d.top.empty() || forced >= 0)) continue;
              Candidate c = base;
              c.cfg.draft_len = g;
              c.cfg.early_stop = es;
              out.push_back(c);
            }
          for (const int hi : {4, 8, max_g}) {
            if (hi > max_g || hi < 2) continue;
            Candidate c = base;
            c.cfg.adaptive_min = 1;
            c.cfg.adaptive_max = hi;
            out.push_back(c);
          }
        }
  }
  for (Candidate& c : out) predict(p, c, w);
  return out;
}

// The candidate an edgespec-generate command line runs, checked against the profile.
Candidate from_flags(const Profile& p, const cli::Args& g, double forced) {
  Candidate c;
  const int drafters =
      int(g.has("draft")) + int(g.has("draft-quant")) + int(g.has("draft-skip")) + int(g.has("draft-ngram"));
  ES_CHECK(drafters == 1, "--predict needs exactly one drafter flag (--draft, --draft-quant, --draft-skip or "
           "--draft-ngram)");
  if (g.has("threads"))
    ES_CHECK(g.num<int>("threads", 0, 1, 1024) == p.threads, "--threads ", g.str("threads"), ": the profile was made "
             "with ", p.threads, " threads (profile again with that count)");
  if (g.has("model")) {
    std::error_code ec;
    const bool same = g.str("model") == p.target_file ||
                      std::filesystem::equivalent(g.str("model"), p.target_file, ec);
    ES_CHECK(same, "--model ", g.str("model"), " is not the profiled target ", p.target_file);
  }
  ES_CHECK(g.num<float>("temp", 0.0f, 0.0f, 100.0f) == static_cast<float>(p.temperature), "--temp ",
           g.str("temp", "0"), ": the profile measured acceptance at temperature ", p.temperature);
  int found = -1;
  for (std::size_t i = 0; i < p.drafters.size(); ++i) {
    const DrafterProfile& d = p.drafters[i];
    std::error_code ec;
    if ((d.kind == "file" && g.has("draft") && (g.str("draft") == d.spec || std::filesystem::equivalent(g.str("draft"), d.spec, ec))) ||
        (d.kind == "quant" && g.has("draft-quant") && parse_dtype(g.str("draft-quant")) == parse_dtype(d.spec)) ||
        (d.kind == "skip" && g.has("draft-skip") &&
         cli::parse_int_list(g.str("draft-skip"), "draft-skip") == cli::parse_int_list(d.spec, "draft-skip")) ||
        (d.kind == "ngram" && g.has("draft-ngram") &&
         g.num<int>("draft-ngram", 3, 1, 64) == cli::parse_int_list(d.spec, "draft-ngram").at(0)))
      found = static_cast<int>(i);
  }
  ES_CHECK(found >= 0, "the profile has no drafter for these flags; profile it (edgespec-profile ... ",
           g.has("draft")         ? "--draft " + g.str("draft")
           : g.has("draft-quant") ? "--draft-quant " + g.str("draft-quant")
           : g.has("draft-ngram") ? "--draft-ngram " + g.str("draft-ngram")
                                  : "--draft-skip " + g.str("draft-skip"),
           ")");
  c.drafter = found;
  c.draft_device = g.str("draft-device", "cpu");
  c.target.device = cli::on_gpu(g, "target-device") ? "gpu" : "cpu";
  c.target.cut = cli::target_cut(g, p.n_layers);  // as edgespec-generate reads it
  if (g.has("adaptive")) {
    const std::string a = g.str("adaptive");
    const auto colon = a.find(':');
    ES_CHECK(colon != std::string::npos, "option --adaptive: expected MIN:MAX, got '", a, "'");
    const auto r = cli::parse_int_list(a.substr(0, colon) + "," + a.substr(colon + 1), "adaptive");
    c.cfg.adaptive_min = r[0];
    c.cfg.adaptive_max = r[1];
  } else {
    c.cfg.draft_len = g.num<int>("draft-len", 4, 1, kMaxDraftLen);
  }
  c.cfg.early_stop = g.num<double>("early-stop", 0.0, 0.0, 0.99);
  c.cfg.overlapped = g.str("schedule", "sequential") == "overlapped";
  ES_CHECK(!c.cfg.overlapped || !c.target.split(), "--schedule overlapped with a split target: the target uses both "
           "devices (edgespec-generate refuses it too)");
  c.forced = g.num<double>("forced-acceptance", forced, 0.0, 1.0);
  const DrafterProfile& d = p.drafters[static_cast<std::size_t>(found)];
  ES_CHECK(!d.lookup() || c.cfg.early_stop == 0, "--early-stop reads the draft model's probabilities; --draft-ngram "
           "has none (edgespec-generate refuses it too)");
  ES_CHECK(!d.lookup() || !c.cfg.overlapped, "--schedule overlapped needs a draft model, not --draft-ngram "
           "(edgespec-generate refuses it too)");
  const int max_g = c.cfg.adaptive() ? c.cfg.adaptive_max : c.cfg.draft_len;
  ES_CHECK(c.forced >= 0 || max_g <= d.draft_len - (c.cfg.overlapped ? 1 : 0), "draft length ", max_g,
           ": the profile measured acceptance at draft length ", d.draft_len, " (profile with --profile-draft-len ",
           max_g + 1, ")");
  return c;
}

json prediction_json(const Profile& p, const Candidate& c) {
  const cost::Prediction& r = c.pred;
  return {{"config", describe(p, c)},
          {"flags", flags(p, c)},
          {"pipeline", pipeline_type(p, c)},
          {"predicted_speedup", r.speedup},
          {"predicted_tokens_per_second", r.tokens_per_second},
          {"predicted_baseline_tokens_per_second", r.baseline_tokens_per_second},
          {"predicted_tokens_per_round", r.tokens_per_round},
          {"predicted_seconds_per_round", r.seconds_per_round},
          {"predicted_mean_draft_len", r.mean_draft_len},
          {"predicted_discarded_per_round", r.discarded_per_round},
          {"predicted_latency_seconds", r.latency_seconds},
          {"predicted_baseline_latency_seconds", r.baseline_latency_seconds},
          {"predicted_latency_speedup", r.latency_speedup}};
}

struct Measured {
  double decode_seconds = 0, prompt_tokens = 0, decode_tokens = 0;  // summed over the runs
  Measured& operator+=(const Measured& o) {
    decode_seconds += o.decode_seconds;
    prompt_tokens += o.prompt_tokens;
    decode_tokens += o.decode_tokens;
    return *this;
  }
};

// Runs edgespec-generate over the held-out prompts; returns decode seconds, prompt tokens and generated tokens
// (decode tokens/s as --json reports it: generated over decode seconds), summed.
Measured measure(const Profile& p, const std::vector<std::string>& prompts, int gen_len, const std::string& extra) {
  const std::string exe = (cli::tool_dir() / "edgespec-generate").string();
  // A new seed per run: greedy output does not depend on it, forced acceptance draws do (the same seed in every
  // run would measure one fixed draw sequence, not the acceptance rate).
  static std::uint64_t seed = 0;
  Measured m;
  for (const std::string& pr : prompts) {
    const json j = cli::run_json(cli::shell_quote(exe) + " --model " + cli::shell_quote(p.target_file) + " --prompt " +
                                 cli::shell_quote(pr) + " -n " + std::to_string(gen_len) + " --json --threads " +
                                 std::to_string(p.threads) + " --seed " + std::to_string(++seed) + " " + extra);
    const json& st = j.at("stats");
    m.decode_seconds += st.at("decode_seconds").get<double>();
    m.prompt_tokens += static_cast<double>(j.at("prompt_tokens").size());
    m.decode_tokens += st.at("generated_tokens").get<double>();
  }
  return m;
}

std::string emit_header(const Profile& p, const std::string& profile_path, const Candidate& c) {
  const DrafterProfile& d = p.drafters[static_cast<std::size_t>(c.drafter)];
  std::ostringstream h;
  h << "// Generated by edgespec-plan from " << profile_path << ": the configuration with the highest predicted\n"
    << "// speedup for " << p.target_file << " (" << p.weight_type << ", " << p.threads << " threads).\n"
    << "//   " << describe(p, c) << "\n"
    << "//   predicted: " << number(c.pred.speedup) << "x, " << number(c.pred.tokens_per_second, 4)
    << " tok/s (target alone " << number(c.pred.baseline_tokens_per_second, 4) << " tok/s)\n"
    << "//   edgespec-generate " << flags(p, c) << "\n"
    << "#pragma once\n\n#include <string_view>\n\n#include <edgespec/edgespec.hpp>\n\nnamespace edgespec::plan {\n\n"
    << "using Pipeline = " << pipeline_type(p, c) << ";\n\n"
    << "// How the draft is made: \"file\" (a second model: drafter_spec is its path), \"quant\" (the target\n"
    << "// requantized to drafter_spec), \"skip\" (the target with the layers in the type skipped), \"ngram\"\n"
    << "// (no draft model: n-gram lookup of up to drafter_spec tokens, fixed in the type).\n"
    << "inline constexpr std::string_view drafter_kind = \"" << d.kind << "\";\n"
    << "inline constexpr std::string_view drafter_spec = \"" << d.spec << "\";\n"
    << "inline constexpr std::string_view target_file = \"" << p.target_file << "\";\n"
    << "inline constexpr int threads = " << p.threads << ";\n"
    << "// Target<Split<...>>: layers [0, target_split) on the first placement (PipelineOptions::target_split); -1: none\n"
    << "inline constexpr int target_split = " << c.target.cut << ";\n"
    << "inline constexpr double predicted_speedup = " << std::setprecision(6) << c.pred.speedup << ";\n"
    << "inline constexpr double predicted_tokens_per_second = " << c.pred.tokens_per_second << ";\n\n"
    << "}  // namespace edgespec::plan\n";
  return h.str();
}

std::string svg_plots(const Profile& p, const std::vector<Candidate>& all, const json& validation) {
  namespace svg = cli::svg;
  std::vector<svg::Chart> charts;
  if (!validation.is_null()) {
    svg::Chart c;
    c.title = "Predicted vs measured speedup (held-out prompts)";
    c.x_label = "measured speedup";
    c.y_label = "predicted speedup";
    c.diagonal = true;
    c.band = 0.05;
    svg::Series s;
    s.name = "configurations";
    for (const json& v : validation.at("configs"))
      s.points.push_back({v.at("measured_speedup").get<double>(), v.at("predicted_speedup").get<double>(), ""});
    c.series.push_back(s);
    charts.push_back(c);
  }
  {
    svg::Chart c;
    c.title = "Predicted speedup vs draft length (sequential)";
    c.x_label = "draft length g";
    c.y_label = "predicted speedup";
    for (std::size_t i = 0; i < p.drafters.size(); ++i) {
      svg::Series s;
      s.name = p.drafters[i].label;
      s.line = true;
      for (int g = 1; g <= kMaxDraftLen; ++g) {
        double best = 0;
        for (const Candidate& k : all)
          if (k.drafter == static_cast<int>(i) && !k.cfg.adaptive() && k.cfg.draft_len == g && k.cfg.early_stop == 0 &&
              !k.cfg.overlapped)
            best = std::max(best, k.pred.speedup);
        if (best > 0) s.points.push_back({static_cast<double>(g), best, ""});
      }
      c.series.push_back(s);
    }
    charts.push_back(c);
  }
  if (!p.skip_search.empty()) {
    svg::Chart c;
    c.title = "Skip sets: acceptance against draft cost";
    c.x_label = "draft cost / target cost";
    c.y_label = "acceptance (teacher-forced)";
    svg::Series front, rest;
    front.name = "Pareto front";
    front.line = front.step = true;
    rest.name = "dominated";
    rest.highlight = false;
    for (const planning::SkipPoint& s : p.skip_search)
      (s.on_front ? front : rest).points.push_back({s.cost, s.agreement, ""});
    std::sort(front.points.begin(), front.points.end(), [](const auto& a, const auto& b) { return a.x < b.x; });
    c.series = {rest, front};
    charts.push_back(c);
  }
  return svg::render_panels(charts, 2);
}

}  // namespace

int main(int argc, char** argv) {
  return cli::guarded_main([&] {
    // edgespec-plan options, then (after "--") the edgespec-generate flags of --predict
    int split = argc;
    for (int i = 1; i < argc; ++i)
      if (std::string(argv[i]) == "--") split = i;
    const cli::Args args(split, argv,
                         {"profile", "prompt-len", "gen-len", "rank", "top", "forced-acceptance", "validate-top",
                          "validate-flags", "validate-reps", "prompts", "emit-header", "svg", "validation"},
                         {"json", "predict", "validate", "help"});
    if (args.has("help")) {
      std::cout << kUsage;
      return 0;
    }
    const std::string profile_path = args.required("profile");
    const Profile p = planning::load_profile(profile_path);
    ES_CHECK(!p.drafters.empty(), "profile '", profile_path, "' has no drafters (profile with --draft, --draft-quant, "
             "--draft-skip or --search-skip)");
    double forced = args.num<double>("forced-acceptance", -1.0, 0.0, 1.0);
    cost::Workload w = p.workload;
    w.prompt_len = args.num<int>("prompt-len", w.prompt_len, 1, 1 << 20);
    w.gen_len = args.num<int>("gen-len", w.gen_len, 1, 1 << 20);
    const bool as_json = args.has("json");

    if (args.has("predict")) {
      ES_CHECK(split < argc, "--predict needs the edgespec-generate flags after '--'");
      std::set<std::string> with_value = {"model", "tokenizer", "prompt", "n", "temp", "top-k", "top-p", "seed",
                                          "threads", "ctx", "system", "chat-template"};
      with_value.insert(cli::kSpeculativeOptions.begin(), cli::kSpeculativeOptions.end());
      std::vector<char*> rest = {argv[0]};
      for (int i = split + 1; i < argc; ++i) rest.push_back(argv[i]);
      const cli::Args g(static_cast<int>(rest.size()), rest.data(), with_value,
                        {"json", "stop-at-eos", "ignore-eos", "chat", "special"});
      Candidate c = from_flags(p, g, forced);
      if (g.has("n")) w.gen_len = g.num<int>("n", 64, 1, 1 << 20);
      if (g.has("prompt")) {  // the prompt's length as edgespec-generate tokenizes it
        const auto weights = std::make_shared<const LlamaWeights>(load_weights(p.target_file));
        const Tokenizer tok = cli::open_tokenizer(*weights, g.str("tokenizer"));
        w.prompt_len = static_cast<int>(tok.encode(g.str("prompt"), true, g.has("special")).size());
      }
      predict(p, c, w);
      std::cout << prediction_json(p, c).dump() << "\n";
      return 0;
    }

    std::vector<Candidate> all = enumerate(p, w, forced);
    bool acceptance = false;
    for (const DrafterProfile& d : p.drafters) acceptance |= !d.accepted.empty();
    ES_CHECK(!all.empty() || args.has("validate-flags"), acceptance ? "the profile allows no configuration"
             : "the profile was made without acceptance (--no-acceptance): give --forced-acceptance A");
    const bool by_latency = args.str("rank", "speedup") == "latency";
    ES_CHECK(args.str("rank", "speedup") == "speedup" || by_latency, "--rank: speedup or latency");
    std::stable_sort(all.begin(), all.end(), [&](const Candidate& a, const Candidate& b) {
      return by_latency ? a.pred.latency_speedup > b.pred.latency_speedup : a.pred.speedup > b.pred.speedup;
    });
    const int top = args.num<int>("top", 10, 1, 100000);

    json validation;
    if (args.has("validation")) {
      std::ifstream in(args.str("validation"));
      ES_CHECK(in.good(), "cannot open --validation file '", args.str("validation"), "'");
      try {
        validation = json::parse(in);
        ES_CHECK(validation.contains("configs"), "no \"configs\"");
      } catch (const json::exception& e) {
        throw_error("--validation '", args.str("validation"), "': ", e.what());
      }
    }
    if (args.has("validate")) {
      std::vector<Candidate> chosen;
      if (args.has("validate-flags")) {
        std::ifstream in(args.str("validate-flags"));
        ES_CHECK(in.good(), "cannot open --validate-flags file '", args.str("validate-flags"), "'");
        for (std::string line; std::getline(in, line);) {
          if (line.empty() || line[0] == '#') continue;
          std::vector<std::string> words = {"plan"};
          std::istringstream ls(line);
          for (std::string wd; ls >> wd;) words.push_back(wd);
          std::vector<char*> av;
          for (auto& x : words) av.push_back(x.data());
          std::set<std::string> with_value(cli::kSpeculativeOptions.begin(), cli::kSpeculativeOptions.end());
          with_value.insert({"threads", "model"});
          const cli::Args g(static_cast<int>(av.size()), av.data(), with_value, {});
          chosen.push_back(from_flags(p, g, forced));
        }
      } else {
        const int n = args.num<int>("validate-top", 5, 1, 1000);
        for (int i = 0; i < n && i < static_cast<int>(all.size()); ++i) chosen.push_back(all[static_cast<std::size_t>(i)]);
      }
      const std::string prompt_file = args.has("prompts") ? args.str("prompts") : cli::shipped_prompts("validate", "prompts");
      const std::vector<std::string> prompts = cli::read_prompts(prompt_file);
      const int reps = args.num<int>("validate-reps", 2, 1, 100);
      // Interleaved: for each prompt (and repetition) the baseline of each target device, then every
      // configuration, so that a slow spell of the machine weighs on both sides of each ratio alike.
      std::map<planning::TargetPlacement, Measured> baseline;  // per target placement
      std::vector<Measured> spec(chosen.size());
      cli::Progress progress(static_cast<double>(reps * prompts.size() * (chosen.size() + 1)));
      for (int r = 0; r < reps; ++r)
        for (const std::string& pr : prompts) {
          const std::vector<std::string> one{pr};
          std::set<planning::TargetPlacement> places;
          for (const Candidate& c : chosen) places.insert(c.target);
          for (const planning::TargetPlacement& place : places) {
            progress.step("baseline, " + target_place(p, place), 0);
            baseline[place] += measure(p, one, w.gen_len, target_flags(place));
          }
          progress.step("baseline", 1);
          for (std::size_t i = 0; i < chosen.size(); ++i) {
            spec[i] += measure(p, one, w.gen_len, config_flags(p, chosen[i]));
            progress.step(describe(p, chosen[i]), 1);
          }
        }
      cost::Workload vw = w;
      // every placement's baseline ran each prompt once per repetition
      vw.prompt_len = static_cast<int>(baseline.begin()->second.prompt_tokens / static_cast<double>(reps * prompts.size()) + 0.5);
      validation = {{"configs", json::array()}};
      double err = 0;
      for (std::size_t i = 0; i < chosen.size(); ++i) {
        Candidate c = chosen[i];
        predict(p, c, vw);
        // decode tokens/s of each side (as --json reports it), and their ratio
        const Measured& b = baseline[c.target];
        const double base_tps = b.decode_tokens / b.decode_seconds, spec_tps = spec[i].decode_tokens / spec[i].decode_seconds;
        const double measured = spec_tps / base_tps;
        err += std::abs(c.pred.speedup - measured) / measured;
        validation["configs"].push_back({{"config", describe(p, c)}, {"flags", flags(p, c)},
                                         {"predicted_speedup", c.pred.speedup}, {"measured_speedup", measured},
                                         {"predicted_tokens_per_second", c.pred.tokens_per_second},
                                         {"measured_tokens_per_second", spec_tps},
                                         {"predicted_baseline_tokens_per_second", c.pred.baseline_tokens_per_second},
                                         {"measured_baseline_tokens_per_second", base_tps}});
      }
      progress.finish();
      validation["mean_abs_error"] = err / static_cast<double>(chosen.size());
      validation["prompts"] = prompt_file;
      validation["prompt_len"] = vw.prompt_len;
      validation["gen_len"] = vw.gen_len;
      if (as_json) {
        std::cout << validation.dump(1) << "\n";
      } else {
        std::cout << std::left << std::setw(70) << "configuration" << " predicted  measured  error\n";
        for (const json& v : validation["configs"]) {
          const double pr = v["predicted_speedup"], me = v["measured_speedup"];
          std::cout << std::setw(70) << v["config"].get<std::string>() << " " << std::setw(10) << number(pr)
                    << std::setw(10) << number(me) << number(100 * (pr - me) / me, 2) << "%\n";
        }
        std::cout << "mean absolute relative error: " << number(100 * validation["mean_abs_error"].get<double>(), 3)
                  << "% over " << chosen.size() << " configurations (" << prompts.size() << " held-out prompts, "
                  << w.gen_len << " tokens each)\n";
      }
    } else if (as_json) {
      json list = json::array();
      for (int i = 0; i < top && i < static_cast<int>(all.size()); ++i)
        list.push_back(prediction_json(p, all[static_cast<std::size_t>(i)]));
      std::cout << json{{"workload", {{"prompt_len", w.prompt_len}, {"gen_len", w.gen_len}}}, {"configs", list}}.dump(1)
                << "\n";
    } else {
      std::cout << "target " << p.target_file << " (" << p.weight_type << ", " << p.threads << " threads); workload: "
                << w.prompt_len << "-token prompt, " << w.gen_len << " tokens; ranked by "
                << (by_latency ? "end-to-end latency" : "decode speedup") << "\n\n";
      std::cout << std::left << std::setw(4) << "#" << std::setw(70) << "configuration" << std::setw(10) << "speedup"
                << std::setw(10) << "tok/s" << std::setw(10) << "tok/round" << "latency\n";
      for (int i = 0; i < top && i < static_cast<int>(all.size()); ++i) {
        const Candidate& c = all[static_cast<std::size_t>(i)];
        std::cout << std::setw(4) << i + 1 << std::setw(70) << describe(p, c) << std::setw(10)
                  << number(c.pred.speedup) << std::setw(10) << number(c.pred.tokens_per_second, 4) << std::setw(10)
                  << number(c.pred.tokens_per_round) << number(c.pred.latency_seconds) << " s\n";
      }
      const Candidate& best = all.front();
      if (best.pred.speedup < 1.0)
        std::cout << "\nno speculative configuration is predicted to beat the target alone here (decode "
                  << number(best.pred.baseline_tokens_per_second, 4) << " tok/s): generate without a drafter, or "
                     "profile cheaper drafters\n";
      std::cout << "\nbest: " << number(best.pred.speedup) << "x predicted (target alone "
                << number(best.pred.baseline_tokens_per_second, 4) << " tok/s)\n  type:  " << pipeline_type(p, best)
                << "\n  flags: edgespec-generate " << flags(p, best) << " --prompt ...\n";
    }
    ES_CHECK(!all.empty() || (!args.has("emit-header") && !args.has("svg")),
             "--emit-header and --svg need ranked configurations (give --forced-acceptance A)");
    if (args.has("emit-header")) {
      std::ofstream h(args.str("emit-header"));
      ES_CHECK(h.good(), "cannot write ", args.str("emit-header"));
      h << emit_header(p, profile_path, all.front());
      std::cerr << "wrote " << args.str("emit-header") << "\n";
    }
    if (args.has("svg")) {
      std::ofstream s(args.str("svg"));
      ES_CHECK(s.good(), "cannot write ", args.str("svg"));
      s << svg_plots(p, all, validation);
      std::cerr << "wrote " << args.str("svg") << "\n";
    }
    return 0;
  });
}
