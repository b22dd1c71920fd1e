// The OpenCL C of the forward pass, assembled at compile time for a model type.
//
// Each kernel is a KernelDef: its name, its parameter list and its body. The source is
//   prelude (the model's dimensions as #defines) + common helpers + "__kernel void NAME(PARAMS) { BODY }" per
//   kernel
// and the host launches a kernel through the same KernelDef (launch() in transformer.hpp checks the argument
// count and kinds against `params` at compile time), so source and launch signature cannot drift apart.
//
// Dimensions: a model type's fixed fields become literals in the prelude (`#define HEAD_DIM 64`), validated by
// a consteval builder (a bad type is a compile error that names the field); dynamic ones are left to build
// options (`-DHEAD_DIM=64`, build_options()). The kernels compute in f32 from weights in F32, F16 (vload_half:
// no cl_khr_fp16 needed), Q8_0 or Q4_0 (GGML block layouts, read as bytes), with an f16 KV cache, rounding Q and
// the softmax weights to f16 around the cache products as the CPU backend does.
#pragma once

#include <array>
#include <cstddef>
#include <string>
#include <string_view>

#include "edgespec/model/arch.hpp"

namespace edgespec::opencl {

// Kinds of kernel parameters; the host checks each launch argument against them.
enum class Param { Buffer, Int, Float };

struct ParamDef {
  Param kind;
  std::string_view decl;  // the OpenCL C declaration, e.g. "global const float* x"
};

template <std::size_t N>
struct KernelDef {
  std::string_view name;
  std::array<ParamDef, N> params;
  std::string_view body;
};
template <std::size_t N>
KernelDef(std::string_view, std::array<ParamDef, N>, std::string_view) -> KernelDef<N>;

inline constexpr int kWorkGroup = 64;  // work-items per work-group: row reductions (rmsnorm, attention, argmax)
                                        // and element-wise ranges; the source's WG

namespace kernels {

using enum Param;

// Helpers every kernel may use. Weight rows are bytes; f16 values are read with vload_half.
inline constexpr std::string_view kCommon = R"CL(
#define QK 32

// x rounded to f16 and back (the CPU backend's f16 cache precision), without cl_khr_fp16.
float round_half(float x) {
  ushort u;
  vstore_half(x, 0, (private half*)&u);
  return vload_half(0, (private half*)&u);
}

float w_f32(global const uchar* row, int j) { return ((global const float*)row)[j]; }
float w_f16(global const uchar* row, int j) { return vload_half(j, (global const half*)row); }
// 16 consecutive values 16 j .. 16 j + 15
float16 w16_f32(global const uchar* row, int j) { return vload16(j, (global const float*)row); }
float16 w16_f16(global const uchar* row, int j) { return vload_half16(j, (global const half*)row); }
// Q8_0 block (34 bytes): f16 scale d, 32 int8 q; value = d q.
float w_q8_0(global const uchar* row, int j) {
  global const uchar* b = row + (j / QK) * 34;
  return vload_half(0, (global const half*)b) * (float)((global const char*)(b + 2))[j % QK];
}
// Q4_0 block (18 bytes): f16 scale d, 16 bytes of nibbles: element i < 16 is the low nibble of byte i, element
// i + 16 the high one; value = d (q - 8).
float w_q4_0(global const uchar* row, int j) {
  global const uchar* b = row + (j / QK) * 18;
  const int i = j % QK;
  const uchar q = b[2 + (i & 15)];
  return vload_half(0, (global const half*)b) * (float)((i < 16 ? (q & 15) : (q >> 4)) - 8);
}

float hsum16(float16 v) {
  const float8 a = v.lo + v.hi;
  const float4 b = a.lo + a.hi;
  return b.x + b.y + b.z + b.w;
}
// Q8_0 block b: values 0..15 in lo, 16..31 in hi, the scale in d.
// (d comes from the row's f32 copy of its block scales, sc: converting f16 in the kernel costs more than the
// products on devices without f16 hardware conversion.)
#define UNPACK_Q8_0(row, b, lo, hi, d)                                        \
  {                                                                          \
    global const uchar* blk_ = (row) + (b) * 34;                             \
    d = sc[b];                                                               \
    global const char* q_ = (global const char*)(blk_ + 2);                 \
    lo = convert_float16(vload16(0, q_));                                    \
    hi = convert_float16(vload16(1, q_));                                    \
  }
// Q4_0 block b: low nibbles are values 0..15, high nibbles 16..31, minus 8.
#define UNPACK_Q4_0(row, b, lo, hi, d)                                        \
  {                                                                          \
    global const uchar* blk_ = (row) + (b) * 18;                             \
    d = sc[b];                                                               \
    const uchar16 q_ = vload16(0, blk_ + 2);                                 \
    lo = convert_float16(convert_char16(q_ & (uchar)15)) - 8.0f;             \
    hi = convert_float16(convert_char16(q_ >> (uchar)4)) - 8.0f;             \
  }

// Work-group sum of v (every work-item gets it). red: WG floats of local memory.
float group_sum(local float* red, float v) {
  const int lid = get_local_id(0);
  red[lid] = v;
  barrier(CLK_LOCAL_MEM_FENCE);
  for (int s = WG / 2; s > 0; s >>= 1) {
    if (lid < s) red[lid] += red[lid + s];
    barrier(CLK_LOCAL_MEM_FENCE);
  }
  const float r = red[0];
  barrier(CLK_LOCAL_MEM_FENCE);
  return r;
}
float group_max(local float* red, float v) {
  const int lid = get_local_id(0);
  red[lid] = v;
  barrier(CLK_LOCAL_MEM_FENCE);
  for (int s = WG / 2; s > 0; s >>= 1) {
    if (lid < s) red[lid] = fmax(red[lid], red[lid + s]);
    barrier(CLK_LOCAL_MEM_FENCE);
  }
  const float r = red[0];
  barrier(CLK_LOCAL_MEM_FENCE);
  return r;
}
)CL";

// ---- the kernels ----

// Element-wise kernels run over a 1-D range rounded up to whole work-groups, guarded by `count`.

// out (n, DIM) = rows tokens[i] of the embedding (vocab, DIM) of type W_LOAD. count = n DIM
inline constexpr std::string_view kGetRowsBody = R"CL(
  const int g = get_global_id(0);
  if (g >= count) return;
  const int i = g / DIM, j = g % DIM;
  out[g] = W_LOAD(w + (size_t)tokens[i] * row_bytes, j);
)CL";

// y (n, rows) = x (n, cols) W^T, W (rows, cols) element type W_LOAD (16 at a time: W_LOAD16). One work-item
// per row, no barriers: it walks its row once per group of 4 positions with vector accumulators (the row
// stays in cache between groups), and sums them once at the end. count = rows (rounded up to work-groups).
inline constexpr std::string_view kMatmulElemBody = R"CL(
  const int row = get_global_id(0);
  if (row >= rows) return;
  global const uchar* wr = w + (size_t)row * row_bytes;
  const int c16 = cols / 16;
  for (int p0 = 0; p0 < n; p0 += 4) {
    const int m = min(4, n - p0);
    global const float* x0 = x + (size_t)p0 * cols;
    float16 v0 = 0.0f, v1 = 0.0f, v2 = 0.0f, v3 = 0.0f;
    for (int j = 0; j < c16; ++j) {
      const float16 wj = W_LOAD16(wr, j);
      v0 += wj * vload16(j, x0);
      if (m > 1) v1 += wj * vload16(j, x0 + cols);
      if (m > 2) v2 += wj * vload16(j, x0 + 2 * cols);
      if (m > 3) v3 += wj * vload16(j, x0 + 3 * cols);
    }
    float a0 = hsum16(v0), a1 = hsum16(v1), a2 = hsum16(v2), a3 = hsum16(v3);
    for (int j = c16 * 16; j < cols; ++j) {
      const float wj = W_LOAD(wr, j);
      a0 += wj * x0[j];
      if (m > 1) a1 += wj * x0[cols + j];
      if (m > 2) a2 += wj * x0[2 * cols + j];
      if (m > 3) a3 += wj * x0[3 * cols + j];
    }
    global float* yp = y + (size_t)p0 * rows + row;
    yp[0] = a0;
    if (m > 1) yp[rows] = a1;
    if (m > 2) yp[2 * rows] = a2;
    if (m > 3) yp[3 * rows] = a3;
  }
)CL";

// The same for block types: whole 32-value blocks, each block's quants unpacked once for 4 positions
// (BLOCK_UNPACK: float16 lo, hi and the scale d).
inline constexpr std::string_view kMatmulBlockBody = R"CL(
  const int row = get_global_id(0);
  if (row >= rows) return;
  global const uchar* wr = w + (size_t)row * row_bytes;
  const int nb = cols / QK;
  global const float* sc = scales + (size_t)row * nb;
  for (int p0 = 0; p0 < n; p0 += 4) {
    const int m = min(4, n - p0);
    global const float* x0 = x + (size_t)p0 * cols;
    // Vector accumulators: one horizontal sum per row and position, not per block.
    float16 a0 = 0.0f, a1 = 0.0f, a2 = 0.0f, a3 = 0.0f;
    for (int b = 0; b < nb; ++b) {
      float16 lo, hi;
      float d;
      BLOCK_UNPACK(wr, b, lo, hi, d);
      lo *= d;
      hi *= d;
      global const float* xb = x0 + b * QK;
      a0 += lo * vload16(0, xb) + hi * vload16(1, xb);
      if (m > 1) a1 += lo * vload16(0, xb + cols) + hi * vload16(1, xb + cols);
      if (m > 2) a2 += lo * vload16(0, xb + 2 * cols) + hi * vload16(1, xb + 2 * cols);
      if (m > 3) a3 += lo * vload16(0, xb + 3 * cols) + hi * vload16(1, xb + 3 * cols);
    }
    global float* yp = y + (size_t)p0 * rows + row;
    yp[0] = hsum16(a0);
    if (m > 1) yp[rows] = hsum16(a1);
    if (m > 2) yp[2 * rows] = hsum16(a2);
    if (m > 3) yp[3 * rows] = hsum16(a3);
  }
)CL";

// out[i] = x[i] / sqrt(mean(x[i]^2) + eps) * w, rows of DIM. One work-group per row.
inline constexpr std::string_view kRmsnormBody = R"CL(
  local float red[WG];
  const int i = get_group_id(0), lid = get_local_id(0);
  global const float* xi = x + (size_t)i * DIM;
  float ss = 0.0f;
  for (int j = lid; j < DIM; j += WG) ss += xi[j] * xi[j];
  ss = group_sum(red, ss);
  const float scale = 1.0f / sqrt(ss / DIM + eps);
  for (int j = lid; j < DIM; j += WG) out[(size_t)i * DIM + j] = xi[j] * scale * w[j];
)CL";

// RoPE in place on rows of heads x HEAD_DIM at positions pos[i]; style 0: pairs (2k, 2k+1), 1 (NeoX): (k, k +
// HEAD_DIM/2). count = n heads HEAD_DIM/2
inline constexpr std::string_view kRopeBody = R"CL(
  const int g = get_global_id(0);
  if (g >= count) return;
  const int k = g % (HEAD_DIM / 2), h = (g / (HEAD_DIM / 2)) % heads, i = g / (HEAD_DIM / 2) / heads;
  const float theta = (float)pos[i] * inv_freq[k];
  const float c = cos(theta), s = sin(theta);
  global float* v = x + (size_t)i * heads * HEAD_DIM + h * HEAD_DIM;
  const int ia = style == 0 ? 2 * k : k, ib = style == 0 ? ia + 1 : ia + HEAD_DIM / 2;
  const float a = v[ia], b = v[ib];
  v[ia] = a * c - b * s;
  v[ib] = a * s + b * c;
)CL";

// K and V rows (n, KV_DIM) into the f16 caches (layers, max_seq, KV_DIM) at their positions. count = n KV_DIM
inline constexpr std::string_view kKvStoreBody = R"CL(
  const int g = get_global_id(0);
  if (g >= count) return;
  const int i = g / KV_DIM, j = g % KV_DIM;
  const size_t at = ((size_t)layer * max_seq + pos[i]) * KV_DIM + j;
  vstore_half(k[(size_t)i * KV_DIM + j], at, (global half*)kc);
  vstore_half(v[(size_t)i * KV_DIM + j], at, (global half*)vc);
)CL";

// Attention of row i, head h over positions 0..pos[i] of the f16 cache: one work-group per (i, h).
// scores: scratch (n, N_HEADS, max_seq). q is rounded to f16 before q.k, the softmax weights before p.v.
inline constexpr std::string_view kAttentionBody = R"CL(
  local float red[WG];
  local float qh[HEAD_DIM];
  const int i = get_group_id(0), h = get_group_id(1), lid = get_local_id(0);
  const int kvh = h / (N_HEADS / N_KV_HEADS);
  const int len = pos[i] + 1;
  for (int d = lid; d < HEAD_DIM; d += WG) qh[d] = round_half(q[(size_t)i * DIM + h * HEAD_DIM + d]);
  barrier(CLK_LOCAL_MEM_FENCE);
  global float* s = scores + ((size_t)i * N_HEADS + h) * max_seq;
  global const half* kl = (global const half*)kc + (size_t)layer * max_seq * KV_DIM + kvh * HEAD_DIM;
  global const half* vl = (global const half*)vc + (size_t)layer * max_seq * KV_DIM + kvh * HEAD_DIM;
  float mx = -INFINITY;
  for (int t = lid; t < len; t += WG) {
#if HEAD_DIM % 16 == 0
    // the key row in 16-wide loads: one vector accumulator, one horizontal sum
    global const half* kt = kl + (size_t)t * KV_DIM;
    float16 acc = 0.0f;
    for (int c = 0; c < HEAD_DIM / 16; ++c) acc += vload16(c, qh) * vload_half16(c, kt);
    float dot = hsum16(acc);
#else
    float dot = 0.0f;
    for (int d = 0; d < HEAD_DIM; ++d) dot += qh[d] * vload_half((size_t)t * KV_DIM + d, kl);
#endif
    dot *= scale;
    s[t] = dot;
    mx = fmax(mx, dot);
  }
  mx = group_max(red, mx);
  float sum = 0.0f;
  for (int t = lid; t < len; t += WG) {
    const float e = exp(s[t] - mx);
    s[t] = e;
    sum += e;
  }
  sum = group_sum(red, sum);
  const float inv = 1.0f / sum;
  for (int t = lid; t < len; t += WG) s[t] = round_half(s[t] * inv);
  barrier(CLK_GLOBAL_MEM_FENCE);
#if HEAD_DIM % 16 == 0 && WG % (HEAD_DIM / 16) == 0
  // out = sum_t s[t] v[t]: work-item (chunk c of 16 values, slice j) sums the rows t = j, j + SLICES, ... in 16-wide
  // loads, then each value adds its SLICES partial sums
  local float part[WG * 16];
  {
    const int c = lid % (HEAD_DIM / 16), j = lid / (HEAD_DIM / 16);
    const int slices = WG / (HEAD_DIM / 16);
    float16 acc = 0.0f;
    for (int t = j; t < len; t += slices) acc += s[t] * vload_half16(c, vl + (size_t)t * KV_DIM);
    vstore16(acc, lid, part);
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int d = lid; d < HEAD_DIM; d += WG) {
      float o = 0.0f;
      for (int k = 0; k < slices; ++k) o += part[(k * (HEAD_DIM / 16) + d / 16) * 16 + d % 16];
      out[(size_t)i * DIM + h * HEAD_DIM + d] = o;
    }
  }
#else
  for (int d = lid; d < HEAD_DIM; d += WG) {
    float o = 0.0f;
    for (int t = 0; t < len; ++t) o += s[t] * vload_half((size_t)t * KV_DIM + d, vl);
    out[(size_t)i * DIM + h * HEAD_DIM + d] = o;
  }
#endif
)CL";

// x += y
inline constexpr std::string_view kAddBody = R"CL(
  const int j = get_global_id(0);
  if (j >= count) return;
  x[j] += y[j];
)CL";

// a = silu(a) * b
inline constexpr std::string_view kSwigluBody = R"CL(
  const int j = get_global_id(0);
  if (j >= count) return;
  const float g = a[j];
  a[j] = g / (1.0f + exp(-g)) * b[j];
)CL";

// out[i] = argmax of logits row i (vocab); ties: the lowest id. One work-group per row.
inline constexpr std::string_view kArgmaxBody = R"CL(
  local float best_v[WG];
  local int best_i[WG];
  const int i = get_group_id(0), lid = get_local_id(0);
  global const float* l = logits + (size_t)i * vocab;
  float bv = -INFINITY;
  int bi = 0x7fffffff;
  for (int j = lid; j < vocab; j += WG)
    if (l[j] > bv) { bv = l[j]; bi = j; }
  best_v[lid] = bv;
  best_i[lid] = bi;
  barrier(CLK_LOCAL_MEM_FENCE);
  for (int s = WG / 2; s > 0; s >>= 1) {
    if (lid < s && (best_v[lid + s] > best_v[lid] || (best_v[lid + s] == best_v[lid] && best_i[lid + s] < best_i[lid]))) {
      best_v[lid] = best_v[lid + s];
      best_i[lid] = best_i[lid + s];
    }
    barrier(CLK_LOCAL_MEM_FENCE);
  }
  if (lid == 0) out[i] = best_i[0];
)CL";

inline constexpr KernelDef get_rows{"get_rows",
                                    std::array{ParamDef{Buffer, "global const uchar* w"},
                                               ParamDef{Int, "int row_bytes"},
                                               ParamDef{Buffer, "global const int* tokens"},
                                               ParamDef{Buffer, "global float* out"}, ParamDef{Int, "int count"}},
                                    kGetRowsBody};
// scales: block types' scales as f32 (rows, cols / 32); unused by F32/F16.
inline constexpr KernelDef matmul_elem{"matmul",
                                       std::array{ParamDef{Buffer, "global const uchar* w"},
                                                  ParamDef{Buffer, "global const float* scales"},
                                                  ParamDef{Int, "int row_bytes"},
                                                  ParamDef{Buffer, "global const float* x"},
                                                  ParamDef{Buffer, "global float* y"}, ParamDef{Int, "int rows"},
                                                  ParamDef{Int, "int cols"}, ParamDef{Int, "int n"}},
                                       kMatmulElemBody};
inline constexpr KernelDef matmul_block{"matmul", matmul_elem.params, kMatmulBlockBody};
inline constexpr KernelDef rmsnorm{"rmsnorm",
                                   std::array{ParamDef{Buffer, "global const float* x"},
                                              ParamDef{Buffer, "global const float* w"},
                                              ParamDef{Buffer, "global float* out"}, ParamDef{Float, "float eps"}},
                                   kRmsnormBody};
inline constexpr KernelDef rope{"rope",
                                std::array{ParamDef{Buffer, "global float* x"}, ParamDef{Buffer, "global const int* pos"},
                                           ParamDef{Buffer, "global const float* inv_freq"},
                                           ParamDef{Int, "int heads"}, ParamDef{Int, "int style"},
                                           ParamDef{Int, "int count"}},
                                kRopeBody};
inline constexpr KernelDef kv_store{"kv_store",
                                    std::array{ParamDef{Buffer, "global const float* k"},
                                               ParamDef{Buffer, "global const float* v"},
                                               ParamDef{Buffer, "global ushort* kc"}, ParamDef{Buffer, "global ushort* vc"},
                                               ParamDef{Buffer, "global const int* pos"}, ParamDef{Int, "int layer"},
                                               ParamDef{Int, "int max_seq"}, ParamDef{Int, "int count"}},
                                    kKvStoreBody};
inline constexpr KernelDef attention{"attention",
                                     std::array{ParamDef{Buffer, "global const float* q"},
                                                ParamDef{Buffer, "global const ushort* kc"},
                                                ParamDef{Buffer, "global const ushort* vc"},
                                                ParamDef{Buffer, "global float* out"},
                                                ParamDef{Buffer, "global float* scores"},
                                                ParamDef{Buffer, "global const int* pos"}, ParamDef{Int, "int layer"},
                                                ParamDef{Int, "int max_seq"}, ParamDef{Float, "float scale"}},
                                     kAttentionBody};
inline constexpr KernelDef add{"add",
                               std::array{ParamDef{Buffer, "global float* x"}, ParamDef{Buffer, "global const float* y"},
                                          ParamDef{Int, "int count"}},
                               kAddBody};
inline constexpr KernelDef swiglu{"swiglu",
                                  std::array{ParamDef{Buffer, "global float* a"}, ParamDef{Buffer, "global const float* b"},
                                             ParamDef{Int, "int count"}},
                                  kSwigluBody};
inline constexpr KernelDef argmax{"argmax",
                                  std::array{ParamDef{Buffer, "global const float* logits"},
                                             ParamDef{Buffer, "global int* out"}, ParamDef{Int, "int vocab"}},
                                  kArgmaxBody};

// Weight element types with kernels: name suffix, how one element and 16 elements are read (element-wise
// matmul), how a block is unpacked (block matmul; empty: element-wise).
struct WeightKernel {
  std::string_view suffix, load, load16, block_unpack;
};
inline constexpr std::array kWeightKernels{WeightKernel{"f32", "w_f32", "w16_f32", ""},
                                           WeightKernel{"f16", "w_f16", "w16_f16", ""},
                                           WeightKernel{"q8_0", "w_q8_0", "", "UNPACK_Q8_0"},
                                           WeightKernel{"q4_0", "w_q4_0", "", "UNPACK_Q4_0"}};

}  // namespace kernels

// ---- the source builder ----

namespace detail {

// Writes into out (or only counts when out is null): usable in constant evaluation.
struct Sink {
  char* out = nullptr;
  std::size_t n = 0;
  constexpr void put(std::string_view s) {
    for (const char c : s) {
      if (out != nullptr) out[n] = c;
      ++n;
    }
  }
  constexpr void put_int(long long v) {
    if (v < 0) {
      put("-");
      v = -v;
    }
    char buf[24];
    int k = 0;
    do {
      buf[k++] = static_cast<char>('0' + v % 10);
      v /= 10;
    } while (v > 0);
    while (k > 0) {
      const char c[2] = {buf[--k], 0};
      put(std::string_view(c, 1));
    }
  }
};

template <std::size_t N>
constexpr void put_kernel(Sink& s, const KernelDef<N>& k, std::string_view suffix = {}) {
  s.put("\nkernel void ");
  s.put(k.name);
  if (!suffix.empty()) {
    s.put("_");
    s.put(suffix);
  }
  s.put("(");
  for (std::size_t i = 0; i < N; ++i) {
    if (i > 0) s.put(", ");
    s.put(k.params[i].decl);
  }
  s.put(") {");
  s.put(k.body);
  s.put("}\n");
}

// The fixed dimensions of Arch as #defines (dynamic ones come from build_options()). Throws (a compile error
// in constant evaluation) for a type the kernels cannot run.
template <class Arch>
constexpr void put_prelude(Sink& s) {
  constexpr int hd = head_dim_of<Arch>;
  if constexpr (Arch::n_heads != dynamic && Arch::n_kv_heads != dynamic)
    if (Arch::n_heads % Arch::n_kv_heads != 0) throw "OpenCL kernels: n_heads must be a multiple of n_kv_heads";
  if constexpr (hd != dynamic)
    if (hd % 2 != 0 || hd > 256) throw "OpenCL kernels: head_dim must be even and at most 256";
  auto def = [&](std::string_view name, int v) {
    if (v == dynamic) return;
    s.put("#define ");
    s.put(name);
    s.put(" ");
    s.put_int(v);
    s.put("\n");
  };
  def("WG", kWorkGroup);  // the host launches with the same constant
  def("DIM", Arch::dim);
  def("N_HEADS", Arch::n_heads);
  def("N_KV_HEADS", Arch::n_kv_heads);
  def("HEAD_DIM", hd);
  if constexpr (Arch::n_kv_heads != dynamic && hd != dynamic) def("KV_DIM", Arch::n_kv_heads * hd);
}

template <class Arch>
constexpr void put_source(Sink& s) {
  s.put("// edgespec OpenCL kernels for ");
  s.put(Arch::name);
  s.put("\n");
  put_prelude<Arch>(s);
  s.put(kernels::kCommon);
  using namespace kernels;
  for (const WeightKernel& w : kWeightKernels) {
    s.put("\n#define W_LOAD ");
    s.put(w.load);
    s.put("\n");
    put_kernel(s, get_rows, w.suffix);
    if (w.block_unpack.empty()) {
      s.put("#define W_LOAD16 ");
      s.put(w.load16);
      s.put("\n");
      put_kernel(s, matmul_elem, w.suffix);
      s.put("#undef W_LOAD16\n");
    } else {
      s.put("#define BLOCK_UNPACK ");
      s.put(w.block_unpack);
      s.put("\n");
      put_kernel(s, matmul_block, w.suffix);
      s.put("#undef BLOCK_UNPACK\n");
    }
    s.put("#undef W_LOAD\n");
  }
  put_kernel(s, rmsnorm);
  put_kernel(s, rope);
  put_kernel(s, kv_store);
  put_kernel(s, attention);
  put_kernel(s, add);
  put_kernel(s, swiglu);
  put_kernel(s, argmax);
}

template <class Arch>
consteval std::size_t source_length() {
  Sink s;
  put_source<Arch>(s);
  return s.n;
}

}  // namespace detail

// The whole program's OpenCL C for model type Arch, built at compile time.
template <class Arch>
inline constexpr auto kSource = [] {
  std::array<char, detail::source_length<Arch>() + 1> a{};
  detail::Sink s{a.data()};
  detail::put_source<Arch>(s);
  return a;
}();

template <class Arch>
[[nodiscard]] constexpr std::string_view source() {
  return std::string_view(kSource<Arch>.data(), kSource<Arch>.size() - 1);
}

// Build options for the dimensions Arch leaves dynamic, from a file's config.
template <class Arch>
[[nodiscard]] std::string build_options(int dim, int n_heads, int n_kv_heads, int head_dim) {
  std::string o = "-cl-std=CL1.2";
  auto def = [&](const char* name, int type_v, int v) {
    if (type_v == dynamic) o += std::string(" -D") + name + "=" + std::to_string(v);
  };
  def("DIM", Arch::dim, dim);
  def("N_HEADS", Arch::n_heads, n_heads);
  def("N_KV_HEADS", Arch::n_kv_heads, n_kv_heads);
  def("HEAD_DIM", head_dim_of<Arch>, head_dim);
  if (Arch::n_kv_heads == dynamic || head_dim_of<Arch> == dynamic) o += " -DKV_DIM=" + std::to_string(n_kv_heads * head_dim);
  return o;
}

}  // namespace edgespec::opencl
