// Model architectures as compile-time types.
//
// A description is a struct of static constexpr members. Each dimension is either a number (fixed: kernels
// are specialized for it, and a file that disagrees is rejected at load time) or `dynamic` (read from the
// file). This is Eigen's Matrix<float, 64, Dynamic> idea applied to a transformer:
//
//   struct MyModel : edgespec::Llama</*dim*/ 512, /*layers*/ 8, /*heads*/ 8, /*kv heads*/ 4, /*ffn*/ 1408,
//                                   /*vocab*/ 32000, /*max seq*/ 2048> {
//     static constexpr float rope_base = 500000.0f;      // override any default by redeclaring it
//   };
//
// Invalid descriptions fail to compile with a sentence (see check_arch below and tests/compile_fail/).
#pragma once

#include <concepts>
#include <cstdint>
#include <string_view>
#include <type_traits>

#include "edgespec/core/dtype.hpp"
#include "edgespec/core/extent.hpp"
#include "edgespec/model/config.hpp"

namespace edgespec {

inline constexpr int dynamic = dynamic_extent;

// Weight type of the layer matrices: Any (whatever the file holds) or one fixed type (each DType a file may hold).
enum class WeightFormat { Any, F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_NL };

// The DType a fixed WeightFormat names (Any: none, F32 returned but never compared).
[[nodiscard]] constexpr DType dtype_of(WeightFormat f) noexcept {
  switch (f) {
    case WeightFormat::Any:
    case WeightFormat::F32: return DType::F32;
    case WeightFormat::F16: return DType::F16;
    case WeightFormat::BF16: return DType::BF16;
    case WeightFormat::Q8_0: return DType::Q8_0;
    case WeightFormat::Q4_0: return DType::Q4_0;
    case WeightFormat::Q4_1: return DType::Q4_1;
    case WeightFormat::Q5_0: return DType::Q5_0;
    case WeightFormat::Q5_1: return DType::Q5_1;
    case WeightFormat::Q2_K: return DType::Q2_K;
    case WeightFormat::Q3_K: return DType::Q3_K;
    case WeightFormat::Q4_K: return DType::Q4_K;
    case WeightFormat::Q5_K: return DType::Q5_K;
    case WeightFormat::Q6_K: return DType::Q6_K;
    case WeightFormat::IQ4_NL: return DType::IQ4_NL;
  }
  return DType::F32;
}

[[nodiscard]] constexpr bool format_accepts(WeightFormat f, DType t) noexcept {
  return f == WeightFormat::Any || dtype_of(f) == t;
}

// The base every description derives from: every member a user may override, with Llama-2 defaults.
template <int Dim, int Layers, int Heads, int KvHeads, int FfnDim, int Vocab, int MaxSeq = dynamic>
struct Llama {
  static constexpr std::string_view name = "llama";
  static constexpr int dim = Dim;
  static constexpr int n_layers = Layers;
  static constexpr int n_heads = Heads;
  static constexpr int n_kv_heads = KvHeads;
  static constexpr int ffn_dim = FfnDim;
  static constexpr int vocab_size = Vocab;
  static constexpr int max_seq = MaxSeq;
  static constexpr float rope_base = 10000.0f;
  static constexpr RopeStyle rope_style = RopeStyle::Normal;
  static constexpr RopeScaling rope_scaling{};
  static constexpr float norm_eps = 1e-5f;
  // Tied: the classifier is the token embedding. Separate: its own matrix. Either: whatever the file has.
  static constexpr int classifier = -1;  // -1 either, else static_cast<int>(Classifier::...)
  static constexpr WeightFormat weight = WeightFormat::Any;
};

template <class A>
concept ArchDescription = requires {
  { A::dim } -> std::convertible_to<int>;
  { A::n_layers } -> std::convertible_to<int>;
  { A::n_heads } -> std::convertible_to<int>;
  { A::n_kv_heads } -> std::convertible_to<int>;
  { A::ffn_dim } -> std::convertible_to<int>;
  { A::vocab_size } -> std::convertible_to<int>;
  { A::max_seq } -> std::convertible_to<int>;
  { A::rope_base } -> std::convertible_to<float>;
  { A::norm_eps } -> std::convertible_to<float>;
  { A::weight } -> std::convertible_to<WeightFormat>;
};

namespace detail {
constexpr bool fixed(int v) { return v != dynamic; }
constexpr bool positive_or_dynamic(int v) { return v == dynamic || v > 0; }
}  // namespace detail

// Compile-time validation with a sentence per rule. Instantiated by every model/pipeline that takes an arch.
template <class A>
struct check_arch {
  static_assert(ArchDescription<A>,
                "model architecture: a description needs static constexpr members dim, n_layers, n_heads, "
                "n_kv_heads, ffn_dim, vocab_size, max_seq, rope_base, norm_eps and weight: derive it from "
                "edgespec::Llama<...>");
  static_assert(detail::positive_or_dynamic(A::dim) && detail::positive_or_dynamic(A::n_layers) &&
                    detail::positive_or_dynamic(A::n_heads) && detail::positive_or_dynamic(A::n_kv_heads) &&
                    detail::positive_or_dynamic(A::ffn_dim) && detail::positive_or_dynamic(A::vocab_size) &&
                    detail::positive_or_dynamic(A::max_seq),
                "model architecture: every dimension must be positive or edgespec::dynamic");
  static_assert(!(detail::fixed(A::dim) && detail::fixed(A::n_heads)) || A::dim % A::n_heads == 0,
                "model architecture: n_heads must divide dim (head_dim = dim / n_heads)");
  static_assert(!(detail::fixed(A::dim) && detail::fixed(A::n_heads)) || (A::dim / A::n_heads) % 2 == 0,
                "model architecture: head_dim = dim / n_heads must be even for rotary embeddings");
  static_assert(!(detail::fixed(A::n_heads) && detail::fixed(A::n_kv_heads)) || A::n_heads % A::n_kv_heads == 0,
                "model architecture: n_kv_heads must divide n_heads (grouped-query attention)");
  static_assert(A::rope_base > 1.0f, "model architecture: rope_base must be greater than 1");
  static_assert(A::norm_eps > 0.0f && A::norm_eps < 1.0f, "model architecture: norm_eps must be in (0, 1)");
  static_assert(A::weight == WeightFormat::Any || !is_quantized(dtype_of(A::weight)) ||
                    ((!detail::fixed(A::dim) || A::dim % kQK == 0) &&
                     (!detail::fixed(A::ffn_dim) || A::ffn_dim % kQK == 0)),
                "model architecture: block-quantized weights need dim and ffn_dim to be multiples of 32");
  static constexpr bool value = true;
};

// True when every dimension is fixed (fully specialized kernels).
template <class A>
inline constexpr bool is_fully_fixed = detail::fixed(A::dim) && detail::fixed(A::n_layers) &&
                                       detail::fixed(A::n_heads) && detail::fixed(A::n_kv_heads) &&
                                       detail::fixed(A::ffn_dim) && detail::fixed(A::vocab_size);

// head_dim and kv_dim at compile time when derivable, else dynamic.
template <class A>
inline constexpr int head_dim_of = detail::fixed(A::dim) && detail::fixed(A::n_heads) ? A::dim / A::n_heads : dynamic;
template <class A>
inline constexpr int kv_dim_of =
    head_dim_of<A> != dynamic && detail::fixed(A::n_kv_heads) ? head_dim_of<A> * A::n_kv_heads : dynamic;

// ---- ready-made descriptions ----

// Any Llama-family file: everything read at run time.
struct AnyLlama : Llama<dynamic, dynamic, dynamic, dynamic, dynamic, dynamic, dynamic> {
  static constexpr std::string_view name = "AnyLlama";
};

// karpathy/tinyllamas (TinyStories), llama2.c checkpoints.
struct Stories260K : Llama<64, 5, 8, 4, 172, 512, 512> {
  static constexpr std::string_view name = "Stories260K";
};
struct Stories15M : Llama<288, 6, 6, 6, 768, 32000, 256> {
  static constexpr std::string_view name = "Stories15M";
};
struct Stories42M : Llama<512, 8, 8, 8, 1376, 32000, 1024> {
  static constexpr std::string_view name = "Stories42M";
};
struct Stories110M : Llama<768, 12, 12, 12, 2048, 32000, 1024> {
  static constexpr std::string_view name = "Stories110M";
};
// TinyLlama/TinyLlama-1.1B (Llama 2 architecture with GQA).
struct TinyLlama1_1B : Llama<2048, 22, 32, 4, 5632, 32000, 2048> {
  static constexpr std::string_view name = "TinyLlama-1.1B";
  static constexpr int classifier = static_cast<int>(Classifier::Separate);
};
// meta-llama/Llama-3.2-1B and -3B: GQA, rope base 500000 with llama3 scaling, tied embeddings.
struct Llama3_2_1B : Llama<2048, 16, 32, 8, 8192, 128256, 131072> {
  static constexpr std::string_view name = "Llama-3.2-1B";
  static constexpr float rope_base = 500000.0f;
  static constexpr RopeScaling rope_scaling{32.0f, 1.0f, 4.0f, 8192};
  static constexpr int classifier = static_cast<int>(Classifier::Tied);
};
struct Llama3_2_3B : Llama<3072, 28, 24, 8, 8192, 128256, 131072> {
  static constexpr std::string_view name = "Llama-3.2-3B";
  static constexpr float rope_base = 500000.0f;
  static constexpr RopeScaling rope_scaling{32.0f, 1.0f, 4.0f, 8192};
  static constexpr int classifier = static_cast<int>(Classifier::Tied);
};

// The full config of a fully-described architecture (all dimensions fixed), e.g. for edgespec-synth.
template <class A>
  requires(is_fully_fixed<A> && detail::fixed(A::max_seq))
constexpr ModelConfig config_of(DType weight_type = DType::F32) {
  (void)check_arch<A>::value;
  ModelConfig c;
  c.dim = A::dim;
  c.n_layers = A::n_layers;
  c.n_heads = A::n_heads;
  c.n_kv_heads = A::n_kv_heads;
  c.ffn_dim = A::ffn_dim;
  c.vocab_size = A::vocab_size;
  c.max_seq = A::max_seq;
  c.rope_base = A::rope_base;
  c.rope_style = A::rope_style;
  c.rope_scaling = A::rope_scaling;
  c.norm_eps = A::norm_eps;
  c.classifier = A::classifier == static_cast<int>(Classifier::Separate) ? Classifier::Separate : Classifier::Tied;
  c.weight_type = weight_type;
  return c;
}

}  // namespace edgespec
