// An in-memory copy of a model's weights in another type (e.g. a Q8_0 or Q4_0 drafter made from the F32
// target at load time). Matrices whose width is not a multiple of the block size fall back to F16, as the
// GGUF converters do (storage_type). Norm vectors are shared with the source, which the copy keeps alive.
// results of a packable type (Q8_0/Q4_0/Q4_1/Q5_0/Q5_1/F16; Q4_K/Q6_K with AVX-512 VNNI) are packed for the
// matmul (pack_weights).
#pragma once

#include <memory>
#include <vector>

#include "edgespec/io/gguf_export.hpp"
#include "edgespec/model/weights.hpp"

namespace edgespec {

[[nodiscard]] inline LlamaWeights requantize(std::shared_ptr<const LlamaWeights> source, DType type,
                                             ThreadPool* pool = nullptr) {
  ES_CHECK(source != nullptr, "requantize: no model given");
  const LlamaWeights& src = *source;
  LlamaWeights w = src;  // config, norm pointers, mapping, vocabulary
  w.owned.clear();       // the new matrices go here; the norms stay in `source`
  w.packed_owned.clear();
  w.base = std::move(source);
  auto convert = [&](const MatrixView& m) {
    const DType t = storage_type(type, m.cols);
    std::vector<float> f32(static_cast<std::size_t>(m.rows * m.cols));
    for (std::int64_t r = 0; r < m.rows; ++r)
      dequantize_row(m.type, static_cast<const std::byte*>(m.data) + r * row_bytes(m.type, m.cols),
                     f32.data() + r * m.cols, m.cols);
    w.owned.emplace_back(static_cast<std::size_t>(row_bytes(t, m.cols) * m.rows));
    detail::convert_rows(t, f32.data(), w.owned.back().data(), m.rows, m.cols, pool);
    return MatrixView{t, m.rows, m.cols, w.owned.back().data()};
  };
  w.tok_embd = convert(src.tok_embd);
  w.output = src.config.classifier == Classifier::Tied ? w.tok_embd : convert(src.output);
  for (LayerWeights& L : w.layers)
    for (MatrixView* m : {&L.wq, &L.wk, &L.wv, &L.wo, &L.w1, &L.w2, &L.w3}) *m = convert(*m);
  w.config.weight_type = w.layers.empty() ? type : w.layers[0].wq.type;
  pack_weights(w, pool);
  return w;
}

}  // namespace edgespec
