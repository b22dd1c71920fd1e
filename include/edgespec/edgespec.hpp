// edgespec: header-only C++20 LLM inference and speculative sampling for edge devices.
// The one header users include; everything public is reachable from here.
//
//   core/       errors, weight types (GGML numbering), compile-time extents
//   io/         memory-mapped files, GGUF reader and writer
//   kernels/    CPU kernels: matmul over every weight type, rmsnorm, rope, softmax, swiglu
//   runtime/    persistent thread pool, generation loop
//   model/      architectures as types, weight loading (GGUF, llama2.c), the transformer
//   tokenizer/  SentencePiece-style BPE and GPT-2 byte-level BPE, as llama.cpp tokenizes; chat templates
//   sampling/   greedy, temperature, top-k, top-p
//   speculative/ Pipeline<Draft<...>, Target<...>, DraftLen<N>>: drafting (models, skipped layers, n-gram
//               lookup), exact verification, statistics
//   planning/   the cost model (constexpr predictions from a profile); skip sets for self-speculative drafts:
//               agreement with the target against cost, Pareto front (profile.hpp, the JSON profile, is apart:
//               it needs nlohmann-json)
#pragma once

#include "edgespec/core/dtype.hpp"
#include "edgespec/core/error.hpp"
#include "edgespec/core/extent.hpp"
#include "edgespec/io/gguf.hpp"
#include "edgespec/io/gguf_export.hpp"
#include "edgespec/io/gguf_writer.hpp"
#include "edgespec/io/mapped_file.hpp"
#include "edgespec/kernels/attention.hpp"
#include "edgespec/kernels/matmul.hpp"
#include "edgespec/kernels/ops.hpp"
#include "edgespec/kernels/quantize.hpp"
#include "edgespec/model/arch.hpp"
#include "edgespec/model/config.hpp"
#include "edgespec/model/transformer.hpp"
#include "edgespec/model/requantize.hpp"
#include "edgespec/model/weights.hpp"
#include "edgespec/planning/cost_model.hpp"
#include "edgespec/planning/skip_search.hpp"
#include "edgespec/runtime/generate.hpp"
#include "edgespec/runtime/thread_pool.hpp"
#include "edgespec/sampling/sampler.hpp"
#include "edgespec/speculative/ngram.hpp"
#include "edgespec/speculative/pipeline.hpp"
#include "edgespec/speculative/properties.hpp"
#include "edgespec/speculative/verify.hpp"
#include "edgespec/tokenizer/chat_template.hpp"
#include "edgespec/tokenizer/tokenizer.hpp"
#include "edgespec/tokenizer/vocab.hpp"
