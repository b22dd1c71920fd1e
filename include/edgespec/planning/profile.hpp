// A profile: what edgespec-profile measured about one target, its drafters and the devices they can run on, as
// the cost model (cost_model.hpp) consumes it, and its JSON form (docs/cost-model.md#profile-format), read and
// written with nlohmann-json.
//
//   profile.target[device]        forward latency table (n = 1..16 at several contexts), prefill curve, overheads
//   profile.drafters[i]           kind + spec (as the edgespec-generate flag takes it), per-device tables (n = 1, 2;
//                                 an n-gram lookup: its time per round), the profiled rounds (acceptance at draft
//                                 length G, top probabilities; an n-gram lookup: the drafts it offered)
//   profile.contention[...]       slowdown of each side when draft and target run at once on two devices
//   profile.splits[...]           the target split across the two devices, measured at both ends (K = 0, K = L)
#pragma once

#include <algorithm>
#include <compare>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "edgespec/core/error.hpp"
#include "edgespec/planning/cost_model.hpp"

namespace edgespec::planning {

inline constexpr int kProfileVersion = 1;

struct Table {  // cost::LatencyTable's storage: seconds[c * max_n + n - 1]
  std::vector<double> contexts;
  int max_n = 0;
  std::vector<double> seconds;
  [[nodiscard]] cost::LatencyTable view() const { return {contexts, seconds, max_n}; }
};

struct Curve {  // cost::PrefillCurve's storage
  std::vector<double> n;
  std::vector<double> seconds;
  [[nodiscard]] cost::PrefillCurve view() const { return {n, seconds}; }
};

struct ModelTiming {
  std::string device;  // "cpu" or "gpu" (the --draft-device / --target-device value)
  Table forward;
  Curve prefill;
  // Target only: overheads of a round on this device (cost::Costs).
  double per_round = 0.0, per_position = 0.0;
  [[nodiscard]] cost::ModelCost view() const { return {forward.view(), prefill.view()}; }
};

struct Calibration {  // real runs over the tables' predictions (cost::Costs)
  std::string draft_device, target_device;
  double draft = 1.0, verify = 1.0, baseline = 1.0;
};

NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Calibration, draft_device, target_device, draft, verify, baseline)

struct DrafterProfile {
  std::string kind;   // "file" (--draft), "quant" (--draft-quant), "skip" (--draft-skip), "ngram" (--draft-ngram)
  std::string spec;   // the option's value: a path, a type name, a layer list "20,21,22", the longest n-gram
  std::string label;  // for people: "target as Q8_0", "skip 20-22"
  std::vector<ModelTiming> timings;  // one per device it was profiled on
  // acceptance (greedy), cost::Trace's storage
  int draft_len = 0;
  std::vector<int> accepted;
  std::vector<float> top;
  std::vector<int> episodes;
  std::vector<int> offered;  // n-gram lookup: the drafts offered per round (cost::Trace::offered); else empty
  // cost::Costs' scales, each measured with the draft and the target on two given devices
  std::vector<Calibration> calibration;

  [[nodiscard]] bool calibrated(const std::string& draft_device, const std::string& target_device) const {
    for (const Calibration& c : calibration)
      if (c.draft_device == draft_device && c.target_device == target_device) return true;
    return false;
  }

  [[nodiscard]] std::string flag() const {
    return (kind == "file"    ? "--draft "
            : kind == "quant" ? "--draft-quant "
            : kind == "ngram" ? "--draft-ngram "
                              : "--draft-skip ") +
           spec;
  }
  [[nodiscard]] bool lookup() const noexcept { return kind == "ngram"; }  // no draft model
  [[nodiscard]] const ModelTiming* on(const std::string& device) const {
    for (const ModelTiming& t : timings)
      if (t.device == device) return &t;
    return nullptr;
  }
  [[nodiscard]] cost::Trace trace() const {
    cost::Trace t{draft_len, accepted, top, episodes};
    t.offered = offered;
    return t;
  }
  [[nodiscard]] double alpha() const {  // accepted / drafted at draft length G
    double a = 0, drafted = 0;
    for (std::size_t r = 0; r < accepted.size(); ++r) {
      a += accepted[r];
      drafted += offered.empty() ? draft_len : offered[r];
    }
    return drafted > 0 ? a / drafted : 0.0;
  }
};

struct Contention {
  std::string drafter;  // which drafter ran beside the target
  std::string draft_device, target_device;
  double target = 1.0, draft = 1.0;  // forward time with the other device busy / alone
  // The real Overlapped pipeline's decode time over what the model predicts for the same run with the factors
  // above: what the schedule's hand-offs between its threads (the verifying host thread, the drafting thread, the
  // OpenCL runtime's) cost beyond two forwards side by side. Optional in the JSON (1: not measured).
  double overlapped = 1.0;
};
inline void to_json(nlohmann::json& j, const Contention& k) {
  j = {{"drafter", k.drafter}, {"draft_device", k.draft_device}, {"target_device", k.target_device},
       {"target", k.target},   {"draft", k.draft},               {"overlapped", k.overlapped}};
}
inline void from_json(const nlohmann::json& j, Contention& k) {
  j.at("drafter").get_to(k.drafter);
  j.at("draft_device").get_to(k.draft_device);
  j.at("target_device").get_to(k.target_device);
  j.at("target").get_to(k.target);
  j.at("draft").get_to(k.draft);
  k.overlapped = j.value("overlapped", 1.0);
}

// The target split across two devices (SplitModel), its forward measured at the two ends of the cut: K = 0 (the
// embedding alone on `first`) and K = n_layers (the classifier alone on `second`); any K in between is
// cost::split_seconds of the two. handover: what the cut adds to a forward over n positions at the first context
// (the hidden states' trip from `first` through the host to `second`): at_0 minus the target alone on `second`.
struct SplitTiming {
  std::string first, second;
  Table at_0, at_all;
  Curve handover;
};

// One evaluated skip set of the search (skip_search.hpp): acceptance proxy against cost proxy.
struct SkipPoint {
  std::vector<int> layers;
  double agreement = 0.0, cost = 0.0;
  bool on_front = false;
};

struct Profile {
  int version = kProfileVersion;
  std::string target_file, target_name, weight_type;
  int n_layers = 0, vocab_size = 0, threads = 0;
  std::string opencl_device;  // empty: no OpenCL device was profiled
  double temperature = 0.0;   // acceptance was measured at this temperature (0: greedy)
  cost::Workload workload;    // the profiled prompts' mean length and the generation length
  std::vector<ModelTiming> target;
  std::vector<DrafterProfile> drafters;
  std::vector<Contention> contention;
  std::vector<SkipPoint> skip_search;
  std::vector<SplitTiming> splits;

  [[nodiscard]] const SplitTiming* split_from(const std::string& first) const {
    for (const SplitTiming& t : splits)
      if (t.first == first) return &t;
    return nullptr;
  }
  [[nodiscard]] const ModelTiming* target_on(const std::string& device) const {
    for (const ModelTiming& t : target)
      if (t.device == device) return &t;
    return nullptr;
  }
  [[nodiscard]] const Contention* contention_for(const std::string& label, const std::string& draft_device,
                                                 const std::string& target_device) const {
    for (const Contention& c : contention)
      if (c.drafter == label && c.draft_device == draft_device && c.target_device == target_device) return &c;
    return nullptr;
  }
};

// ---- JSON ----

inline void to_json(nlohmann::json& j, const Table& t) {
  j = {{"contexts", t.contexts}, {"max_n", t.max_n}, {"seconds", t.seconds}};
}
inline void from_json(const nlohmann::json& j, Table& t) {
  j.at("contexts").get_to(t.contexts);
  j.at("max_n").get_to(t.max_n);
  j.at("seconds").get_to(t.seconds);
  ES_CHECK(!t.contexts.empty() && t.max_n >= 1 && t.seconds.size() == t.contexts.size() * std::size_t(t.max_n),
           "profile: a latency table needs contexts, max_n >= 1 and contexts x max_n seconds (", t.contexts.size(),
           " x ", t.max_n, " != ", t.seconds.size(), ")");
  ES_CHECK(std::is_sorted(t.contexts.begin(), t.contexts.end()), "profile: latency table contexts must increase");
}
inline void to_json(nlohmann::json& j, const Curve& c) { j = {{"n", c.n}, {"seconds", c.seconds}}; }
inline void from_json(const nlohmann::json& j, Curve& c) {
  j.at("n").get_to(c.n);
  j.at("seconds").get_to(c.seconds);
  ES_CHECK(c.n.size() == c.seconds.size(), "profile: a prefill curve needs as many seconds as lengths");
}
inline void to_json(nlohmann::json& j, const ModelTiming& t) {
  j = {{"device", t.device}, {"forward", t.forward}, {"prefill", t.prefill}, {"per_round", t.per_round},
       {"per_position", t.per_position}};
}
inline void from_json(const nlohmann::json& j, ModelTiming& t) {
  j.at("device").get_to(t.device);
  ES_CHECK(t.device == "cpu" || t.device == "gpu", "profile: device '", t.device, "' is not cpu or gpu");
  j.at("forward").get_to(t.forward);
  j.at("prefill").get_to(t.prefill);
  t.per_round = j.value("per_round", 0.0);
  t.per_position = j.value("per_position", 0.0);
}
inline void to_json(nlohmann::json& j, const DrafterProfile& d) {
  std::vector<double> by_pos;
  for (int i = 1; i <= d.draft_len; ++i) by_pos.push_back(d.trace().acceptance_at(i));
  j = {{"kind", d.kind},
       {"spec", d.spec},
       {"label", d.label},
       {"timings", d.timings},
       {"acceptance",
        {{"draft_len", d.draft_len},
         {"alpha", d.alpha()},
         {"alpha_by_position", by_pos},
         {"accepted", d.accepted},
         {"top", d.top},
         {"episodes", d.episodes},
         {"offered", d.offered}}},
       {"calibration", d.calibration}};
}
inline void from_json(const nlohmann::json& j, DrafterProfile& d) {
  j.at("kind").get_to(d.kind);
  ES_CHECK(d.kind == "file" || d.kind == "quant" || d.kind == "skip" || d.kind == "ngram", "profile: drafter kind '",
           d.kind, "' is not file, quant, skip or ngram");
  j.at("spec").get_to(d.spec);
  d.label = j.value("label", d.spec);
  j.at("timings").get_to(d.timings);
  const nlohmann::json& a = j.at("acceptance");
  a.at("draft_len").get_to(d.draft_len);
  a.at("accepted").get_to(d.accepted);
  d.top = a.value("top", std::vector<float>{});
  d.episodes = a.value("episodes", std::vector<int>{});
  d.offered = a.value("offered", std::vector<int>{});
  ES_CHECK(d.draft_len >= 0 && d.draft_len <= 64, "profile: drafter ", d.label, ": draft_len ", d.draft_len);
  ES_CHECK(d.top.empty() || d.top.size() == d.accepted.size() * std::size_t(d.draft_len), "profile: drafter ",
           d.label, ": top needs draft_len entries per round");
  ES_CHECK(d.offered.empty() || d.offered.size() == d.accepted.size(), "profile: drafter ", d.label,
           ": offered needs one entry per round");
  ES_CHECK(!d.lookup() || d.offered.size() == d.accepted.size(), "profile: n-gram drafter ", d.label,
           ": the rounds need their offered drafts");
  for (std::size_t r = 0; r < d.accepted.size(); ++r) {
    const int k = d.accepted[r], offer = d.offered.empty() ? d.draft_len : d.offered[r];
    ES_CHECK(offer >= 0 && offer <= d.draft_len && k >= 0 && k <= offer, "profile: drafter ", d.label,
             ": a round accepted ", k, " of ", offer, " offered drafts (draft length ", d.draft_len, ")");
  }
  for (const int e : d.episodes)
    ES_CHECK(e >= 0 && e <= static_cast<int>(d.accepted.size()), "profile: drafter ", d.label, ": episode start ", e);
  d.calibration = j.value("calibration", std::vector<Calibration>{});
  for (const Calibration& c : d.calibration)
    for (const double x : {c.draft, c.verify, c.baseline})
      ES_CHECK(x > 0.1 && x < 10, "profile: drafter ", d.label, ": calibration scale ", x, " is implausible");
}
inline void to_json(nlohmann::json& j, const SplitTiming& t) {
  j = {{"first", t.first}, {"second", t.second}, {"at_0", t.at_0}, {"at_all", t.at_all}, {"handover", t.handover}};
}
inline void from_json(const nlohmann::json& j, SplitTiming& t) {
  j.at("first").get_to(t.first);
  j.at("second").get_to(t.second);
  ES_CHECK((t.first == "cpu" && t.second == "gpu") || (t.first == "gpu" && t.second == "cpu"),
           "profile: a split target needs devices cpu and gpu, not '", t.first, "' and '", t.second, "'");
  j.at("at_0").get_to(t.at_0);
  j.at("at_all").get_to(t.at_all);
  ES_CHECK(t.at_0.contexts == t.at_all.contexts && t.at_0.max_n == t.at_all.max_n,
           "profile: a split target's two ends need the same contexts and n");
  t.handover = j.value("handover", Curve{});
}
inline void to_json(nlohmann::json& j, const SkipPoint& p) {
  j = {{"layers", p.layers}, {"agreement", p.agreement}, {"cost", p.cost}, {"on_front", p.on_front}};
}
inline void from_json(const nlohmann::json& j, SkipPoint& p) {
  j.at("layers").get_to(p.layers);
  j.at("agreement").get_to(p.agreement);
  j.at("cost").get_to(p.cost);
  p.on_front = j.value("on_front", false);
}
inline void to_json(nlohmann::json& j, const Profile& p) {
  j = {{"format", "edgespec-profile"},
       {"version", p.version},
       {"target", {{"file", p.target_file}, {"name", p.target_name}, {"weight_type", p.weight_type},
                   {"n_layers", p.n_layers}, {"vocab_size", p.vocab_size}}},
       {"threads", p.threads},
       {"opencl_device", p.opencl_device},
       {"temperature", p.temperature},
       {"workload", {{"prompt_len", p.workload.prompt_len}, {"gen_len", p.workload.gen_len}}},
       {"target_timings", p.target},
       {"drafters", p.drafters},
       {"contention", p.contention},
       {"skip_search", p.skip_search},
       {"splits", p.splits}};
}
inline void from_json(const nlohmann::json& j, Profile& p) {
  ES_CHECK(j.value("format", std::string()) == "edgespec-profile", "not an edgespec profile (no \"format\": "
           "\"edgespec-profile\")");
  j.at("version").get_to(p.version);
  ES_CHECK(p.version == kProfileVersion, "profile version ", p.version, " is not ", kProfileVersion,
           " (profile again with this edgespec-profile)");
  const nlohmann::json& t = j.at("target");
  t.at("file").get_to(p.target_file);
  p.target_name = t.value("name", std::string());
  p.weight_type = t.value("weight_type", std::string());
  t.at("n_layers").get_to(p.n_layers);
  t.at("vocab_size").get_to(p.vocab_size);
  j.at("threads").get_to(p.threads);
  p.opencl_device = j.value("opencl_device", std::string());
  p.temperature = j.value("temperature", 0.0);
  const nlohmann::json& w = j.at("workload");
  w.at("prompt_len").get_to(p.workload.prompt_len);
  w.at("gen_len").get_to(p.workload.gen_len);
  j.at("target_timings").get_to(p.target);
  ES_CHECK(!p.target.empty(), "profile: no target timings");
  j.at("drafters").get_to(p.drafters);
  p.contention = j.value("contention", std::vector<Contention>{});
  p.skip_search = j.value("skip_search", std::vector<SkipPoint>{});
  p.splits = j.value("splits", std::vector<SplitTiming>{});
}

inline Profile load_profile(const std::string& path) {
  std::ifstream in(path);
  ES_CHECK(in.good(), "cannot open profile '", path, "'");
  try {
    return nlohmann::json::parse(in).get<Profile>();
  } catch (const nlohmann::json::exception& e) {
    throw_error("profile '", path, "': ", e.what());
  } catch (const Error& e) {
    throw_error("profile '", path, "': ", e.what());
  }
}

inline void save_profile(const Profile& p, const std::string& path) {
  std::ofstream out(path);
  ES_CHECK(out.good(), "cannot write profile '", path, "'");
  out << nlohmann::json(p).dump(1) << "\n";
  ES_CHECK(out.good(), "writing profile '", path, "' failed");
}

// Where the target runs: on one device, or split (cut >= 0: layers [0, cut) on `device`, the rest and the
// classifier on the other; cut = n_layers: the classifier alone there).
struct TargetPlacement {
  std::string device = "cpu";
  int cut = -1;
  [[nodiscard]] bool split() const noexcept { return cut >= 0; }
  [[nodiscard]] std::string other() const { return device == "cpu" ? "gpu" : "cpu"; }
  auto operator<=>(const TargetPlacement&) const = default;
};

// The target's timing in a placement: a device's own, or for a split the table of cost::split_seconds between
// the measured ends (and the prefill likewise between the two devices' own). Throws naming what is missing.
inline ModelTiming target_timing(const Profile& p, const TargetPlacement& at) {
  const ModelTiming* t = p.target_on(at.device);
  ES_CHECK(t != nullptr, "the profile has no timings of the target on ", at.device, " (profile with --target-device ",
           at.device, ")");
  if (!at.split()) return *t;
  ES_CHECK(at.cut <= p.n_layers, "target split at layer ", at.cut, ": the target has ", p.n_layers, " layers");
  const SplitTiming* s = p.split_from(at.device);
  const ModelTiming* o = p.target_on(at.other());
  ES_CHECK(s != nullptr && o != nullptr, "the profile has no split target from ", at.device, " to ", at.other(),
           " (profile with --target-device cpu --target-device gpu)");
  ModelTiming r = *t;
  r.forward = s->at_0;
  for (std::size_t i = 0; i < r.forward.seconds.size(); ++i)
    r.forward.seconds[i] = cost::split_seconds(s->at_0.seconds[i], s->at_all.seconds[i], at.cut, p.n_layers);
  // prefill: all layers on `other` (K = 0) to all on `device` (K = L), at the lengths both measured
  r.prefill = {};
  for (std::size_t i = 0; i < t->prefill.n.size() && i < o->prefill.n.size(); ++i)
    if (t->prefill.n[i] == o->prefill.n[i]) {
      r.prefill.n.push_back(t->prefill.n[i]);
      r.prefill.seconds.push_back(cost::split_seconds(o->prefill.seconds[i], t->prefill.seconds[i], at.cut, p.n_layers));
    }
  return r;
}

// The cost model's inputs for a drafter on draft_device and the target timed by `t` (target_timing; keep it alive
// while the result is used) on target_device (for a split: its first device, whose calibration it takes).
// Throws naming what the profile lacks.
inline cost::Costs costs_for(const Profile& p, const DrafterProfile& d, const std::string& draft_device,
                             const ModelTiming& target, const std::string& target_device, bool overlapped) {
  const ModelTiming* t = &target;
  const ModelTiming* dt = d.on(draft_device);
  ES_CHECK(dt != nullptr, "the profile has no timings of drafter '", d.label, "' on ", draft_device,
           " (profile with --draft-device ", draft_device, ")");
  cost::Costs c{t->view(), dt->view(), t->per_round, t->per_position, 1.0, 1.0};
  // The scales of this placement's own calibration; else the drafting scale of a placement with the same draft
  // device and the target's scales of one with the same target device.
  bool draft_set = false, target_set = false;
  for (const bool exact : {true, false})
    for (const Calibration& k : d.calibration) {
      const bool same_pair = k.draft_device == draft_device && k.target_device == target_device;
      if (exact != same_pair) continue;
      if (!draft_set && k.draft_device == draft_device) {
        c.draft_scale = k.draft;
        draft_set = true;
      }
      if (!target_set && k.target_device == target_device) {
        c.verify_scale = k.verify;
        c.baseline_scale = k.baseline;
        target_set = true;
      }
    }
  if (overlapped) {
    const Contention* k = p.contention_for(d.label, draft_device, target_device);
    ES_CHECK(k != nullptr, "the profile has no contention measurement for drafter '", d.label, "' on ",
             draft_device, " beside the target on ", target_device);
    c.target_contended = k->target;
    c.draft_contended = k->draft;
    c.overlap_scale = k->overlapped;
  }
  return c;
}

}  // namespace edgespec::planning
