// The configuration of a speculative pipeline, as small types (CuTe/Kokkos style):
//
//   Pipeline<Draft<OnGPU>, Target<OnCPU>, DraftLen<4>>                              architecture read from files
//   Pipeline<Draft<Stories260K, OnCPU>, Target<Stories260K, OnCPU>, DraftLen<4>>    dimensions fixed
//   Pipeline<Target<AnyLlama>, Draft<SkipLayers<1, 3>>, AdaptiveDraftLen<1, 8>>     self-speculative
//   Pipeline<Draft<NGram<3>>, Target<>, DraftLen<4>>                                n-gram lookup, no draft model
//
// Properties are accepted in any order. Each one names its kind (`property_kind`), so a missing, duplicated or
// unknown property is a compile error that says which.
#pragma once

#include <array>
#include <cstddef>
#include <string_view>
#include <tuple>
#include <type_traits>

#include "edgespec/model/arch.hpp"

namespace edgespec {

// ---- placements (execution spaces) ----

struct OnCPU {
  using execution_space = OnCPU;
  static constexpr std::string_view name = "OnCPU";
  static constexpr bool available = true;
};
// The GPU placement: the OpenCL device EDGESPEC_OPENCL_DEVICE selects (opencl/device.hpp), running the whole
// forward pass (opencl/transformer.hpp). Available in builds with OpenCL (EDGESPEC_HAS_OPENCL, set by the CMake
// target when OpenCL is found); elsewhere a pipeline that places a model on it compiles, and its constructor
// throws a clear error.
struct OnGPU {
  using execution_space = OnGPU;
  static constexpr std::string_view name = "OnGPU";
#if defined(EDGESPEC_HAS_OPENCL)
  static constexpr bool available = true;
#else
  static constexpr bool available = false;
#endif
};

template <class T>
concept Placement = requires { typename T::execution_space; } && std::is_same_v<typename T::execution_space, T>;

// A model partitioned across two placements (model/split_model.hpp): layers [0, K) on First, the rest and the
// classifier on Second, K from PipelineOptions::target_split (--target-split K; n_layers: the classifier alone).
template <Placement First, Placement Second>
struct Split {
  using execution_space = Split;
  using first = First;
  using second = Second;
  static constexpr std::string_view name = "Split";
  static constexpr bool available = First::available && Second::available;
  static_assert(!std::is_same_v<First, Second>, "Split<First, Second>: the two parts need different placements");
};

// ---- property kinds ----

namespace prop {
struct draft {};
struct target {};
struct draft_length {};
struct verification {};
struct schedule {};
struct early_stop {};
}  // namespace prop

template <class T>
concept PipelineProperty = requires { typename T::property_kind; };

namespace detail {
template <class T>
inline constexpr bool dependent_false = false;

// The first type of Ts satisfying Pred, else Default.
template <template <class> class Pred, class Default, class... Ts>
struct find_if {
  using type = Default;
};
template <template <class> class Pred, class Default, class T, class... Ts>
struct find_if<Pred, Default, T, Ts...> {
  using type = std::conditional_t<Pred<T>::value, T, typename find_if<Pred, Default, Ts...>::type>;
};
template <template <class> class Pred, class... Ts>
inline constexpr int count_if = (0 + ... + (Pred<Ts>::value ? 1 : 0));

// Arguments of Draft<...> / Target<...>: at most one architecture, one placement, one drafting rule
// (SkipLayers<...> or NGram<N>).
struct no_skip {};
struct no_ngram {};
template <class T>
struct is_placement : std::bool_constant<Placement<T>> {};
template <class T>
struct is_arch : std::bool_constant<ArchDescription<T>> {};
}  // namespace detail

// Self-speculative drafting: the target itself with these layers skipped (weights shared, zero extra memory).
// SkipLayers<> (no layers) takes the skip set at run time (PipelineOptions::skip_layers).
template <int... Layers>
struct SkipLayers {
  static constexpr std::array<int, sizeof...(Layers)> layers{Layers...};
  static_assert(((Layers >= 0) && ...), "SkipLayers: layer indices must be >= 0");
};
// N-gram lookup drafting (ngram.hpp): the draft tokens are what followed the latest earlier occurrence of the
// sequence's last n tokens, n = MaxN down to 1. No draft model: no weights, no KV cache, no forward.
// NGram<> (MaxN 0) takes the longest n-gram at run time (PipelineOptions::ngram_max).
template <int MaxN = 0>
struct NGram {
  static_assert(MaxN >= 0 && MaxN <= 64,
                "NGram<N>: N (the longest n-gram matched) must be in 1..64, or 0 (NGram<>) to take it from "
                "PipelineOptions::ngram_max");
  static constexpr int max_n = MaxN;
};

namespace detail {
template <class T>
struct is_skip : std::false_type {};
template <int... L>
struct is_skip<SkipLayers<L...>> : std::true_type {};
template <class T>
struct is_ngram : std::false_type {};
template <int N>
struct is_ngram<NGram<N>> : std::true_type {};

template <class Role, class... Args>
struct model_props {
  static_assert(count_if<is_arch, Args...> <= 1, "Draft/Target: give at most one model architecture");
  static_assert(count_if<is_placement, Args...> <= 1, "Draft/Target: give at most one placement (OnCPU or OnGPU)");
  static_assert(count_if<is_skip, Args...> <= 1, "Draft: give at most one SkipLayers<...>");
  static_assert(count_if<is_ngram, Args...> <= 1, "Draft: give at most one NGram<N>");
  static_assert(count_if<is_skip, Args...> + count_if<is_ngram, Args...> <= 1,
                "Draft: give at most one drafting rule, SkipLayers<...> or NGram<N>, not both");
  static_assert(sizeof...(Args) == count_if<is_arch, Args...> + count_if<is_placement, Args...> +
                                       count_if<is_skip, Args...> + count_if<is_ngram, Args...>,
                "Draft/Target arguments must be a model architecture (e.g. Stories260K, AnyLlama), a placement "
                "(OnCPU, OnGPU) or, for Draft, SkipLayers<...> or NGram<N>");
  using arch = typename find_if<is_arch, AnyLlama, Args...>::type;
  using placement = typename find_if<is_placement, OnCPU, Args...>::type;
  using skip = typename find_if<is_skip, no_skip, Args...>::type;
  using ngram = typename find_if<is_ngram, no_ngram, Args...>::type;
  static constexpr bool self_speculative = !std::is_same_v<skip, no_skip>;
  static constexpr bool ngram_lookup = !std::is_same_v<ngram, no_ngram>;
  static constexpr bool arch_given = count_if<is_arch, Args...> == 1;
};
}  // namespace detail

// Draft<[Arch], [Placement], [SkipLayers<...> | NGram<N>]>: what proposes tokens.
template <class... Args>
struct Draft : detail::model_props<prop::draft, Args...> {
  using property_kind = prop::draft;
  static_assert(!Draft::ngram_lookup || !Draft::arch_given,
                "Draft<NGram<N>> looks tokens up in the sequence, with no model: do not give it an architecture");
  static_assert(!Draft::ngram_lookup || std::is_same_v<typename Draft::placement, OnCPU>,
                "Draft<NGram<N>> runs on the CPU: give it no placement, or OnCPU");
};
// Target<[Arch], [Placement]>: the model whose distribution the output follows.
template <class... Args>
struct Target : detail::model_props<prop::target, Args...> {
  using property_kind = prop::target;
  static_assert(!Target::self_speculative, "Target cannot skip layers: SkipLayers belongs in Draft<...>");
  static_assert(!Target::ngram_lookup, "Target cannot be an n-gram lookup: NGram<N> belongs in Draft<...>");
};

// ---- draft length ----

inline constexpr int kMaxDraftLen = 16;

// A fixed number of draft tokens per round; the drafting loop is unrolled at compile time.
template <int N>
struct DraftLen {
  using property_kind = prop::draft_length;
  static_assert(N >= 1 && N <= kMaxDraftLen, "DraftLen<N>: N must be in 1..16");
  static constexpr int min = N;
  static constexpr int max = N;
  static constexpr bool adaptive = false;
};
// The draft length follows the running acceptance estimate within [Min, Max] (see docs/speculative.md).
template <int Min, int Max>
struct AdaptiveDraftLen {
  using property_kind = prop::draft_length;
  static_assert(Min >= 1 && Max <= kMaxDraftLen && Min <= Max, "AdaptiveDraftLen<Min, Max>: need 1 <= Min <= Max <= 16");
  static constexpr int min = Min;
  static constexpr int max = Max;
  static constexpr bool adaptive = true;
};

// ---- verification ----

// Greedy: accept while the target's argmax equals the draft token (output = target greedy decoding).
struct GreedyVerify {
  using property_kind = prop::verification;
  static constexpr int mode = 0;
};
// Stochastic (Leviathan et al. 2023 / Chen et al. 2023): accept x with probability min(1, p(x)/q(x)), resample
// from normalize(max(0, p - q)) on rejection: the output distribution is the target's.
struct StochasticVerify {
  using property_kind = prop::verification;
  static constexpr int mode = 1;
};
// Greedy when the sampling temperature is 0, stochastic otherwise (the default).
struct AutoVerify {
  using property_kind = prop::verification;
  static constexpr int mode = 2;
};

// ---- early stop of drafting ----

// Stop drafting a round early when the draft's top probability falls below Percent / 100 (model drafters only:
// Draft<NGram<N>> has no probabilities, and a pipeline with both is refused).
template <int Percent>
struct EarlyStop {
  using property_kind = prop::early_stop;
  static_assert(Percent >= 0 && Percent < 100, "EarlyStop<Percent>: Percent must be in 0..99");
  static constexpr float threshold = static_cast<float>(Percent) / 100.0f;
};

// ---- schedule ----

// Draft, then verify, one after the other.
struct Sequential {
  using property_kind = prop::schedule;
  static constexpr bool overlapped = false;
};
// While the target verifies round k on its device, the drafter on the other device already drafts round k + 1
// as if all of round k were accepted (PEARL's post-verify, Liu et al. 2024): it feeds d_g, guesses the bonus
// token e_1 and drafts e_2.. after it. When all g were accepted and the bonus is e_1, round k + 1 starts with
// e_2.. as its drafts and no drafting time; otherwise that work is discarded. Output is unchanged. Needs the
// draft and the target on different placements (they run at the same time).
struct Overlapped {
  using property_kind = prop::schedule;
  static constexpr bool overlapped = true;
};

// ---- property list parsing ----

namespace detail {
template <class Kind>
struct of_kind {
  template <class T>
  struct pred : std::bool_constant<std::is_same_v<typename T::property_kind, Kind>> {};
};

template <class... Props>
struct pipeline_props {
  static_assert((PipelineProperty<Props> && ...),
                "Pipeline: unknown property: every argument must be one of Draft<...>, Target<...>, DraftLen<N>, "
                "AdaptiveDraftLen<Min, Max>, GreedyVerify/StochasticVerify/AutoVerify, EarlyStop<P>, Sequential/Overlapped");
  template <class Kind>
  static constexpr int count = count_if<of_kind<Kind>::template pred, Props...>;

  static_assert(count<prop::draft> >= 1, "Pipeline: missing Draft<...> property");
  static_assert(count<prop::target> >= 1, "Pipeline: missing Target<...> property");
  static_assert(count<prop::draft> <= 1, "Pipeline: duplicated property: Draft<...> given twice");
  static_assert(count<prop::target> <= 1, "Pipeline: duplicated property: Target<...> given twice");
  static_assert(count<prop::draft_length> <= 1,
                "Pipeline: duplicated property: the draft length (DraftLen / AdaptiveDraftLen) given twice");
  static_assert(count<prop::verification> <= 1, "Pipeline: duplicated property: the verification policy given twice");
  static_assert(count<prop::early_stop> <= 1, "Pipeline: duplicated property: EarlyStop given twice");
  static_assert(count<prop::schedule> <= 1, "Pipeline: duplicated property: the schedule given twice");

  template <class Kind, class Default>
  using get = typename find_if<of_kind<Kind>::template pred, Default, Props...>::type;

  using draft = get<prop::draft, Draft<>>;
  using target = get<prop::target, Target<>>;
  using draft_length = get<prop::draft_length, DraftLen<4>>;
  using verification = get<prop::verification, AutoVerify>;
  using early_stop = get<prop::early_stop, EarlyStop<0>>;
  using schedule = get<prop::schedule, Sequential>;
};

// Draft and target vocabularies, when both are known at compile time. The sizes appear in the diagnostic's
// template arguments: vocab_check<512, 32000>.
template <int DraftVocab, int TargetVocab>
struct vocab_check {
  static_assert(DraftVocab == dynamic || TargetVocab == dynamic || DraftVocab == TargetVocab,
                "Draft and Target must share a vocabulary (see vocab_check<draft, target> above)");
  static constexpr bool value = true;
};
}  // namespace detail

}  // namespace edgespec
