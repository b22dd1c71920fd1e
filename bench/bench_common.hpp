// Helpers shared by the benchmark programs: environment settings, the reference model directory, and
// synthetic models written once into EDGESPEC_BENCH_DIR (default ./bench-models).
#pragma once

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <string>
#include <thread>

#include <edgespec/edgespec.hpp>

namespace edgespec::bench {

inline std::string env_or(const char* name, const char* def) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? v : def;
}

// EDGESPEC_MODEL_DIR, else ../shared/models relative to the working directory's ancestors (as the tests do).
inline std::filesystem::path model_dir() {
  if (const char* env = std::getenv("EDGESPEC_MODEL_DIR"); env != nullptr && *env != '\0') return env;
  for (auto p = std::filesystem::current_path(); !p.empty() && p != p.root_path(); p = p.parent_path())
    if (std::filesystem::exists(p / "../shared/models")) return p / "../shared/models";
  return "../shared/models";
}

// The path of a random-weight model of `shape` (edgespec-synth's names) in `type`, written on first use.
inline std::string synthetic_model(const std::string& shape, DType type, int layers, int ctx) {
  namespace fs = std::filesystem;
  const fs::path dir = env_or("EDGESPEC_BENCH_DIR", "bench-models");
  fs::create_directories(dir);
  std::string file = shape + "-" + std::string(name(type)) + (layers > 0 ? "-L" + std::to_string(layers) : "") +
                     "-ctx" + std::to_string(ctx) + ".gguf";
  std::transform(file.begin(), file.end(), file.begin(), [](unsigned char c) { return std::tolower(c); });
  const fs::path path = dir / file;
  if (!fs::exists(path)) {
    std::cerr << "writing " << path << " (once)...\n";
    ThreadPool pool(static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
    SynthOptions o;
    o.shape = shape;
    o.type = type;
    o.seed = 1;
    o.layers = layers;
    o.ctx = ctx;
    o.pool = &pool;
    const fs::path tmp = path.string() + ".part";
    synth_llama_gguf(tmp.string(), o);
    fs::rename(tmp, path);
  }
  return path.string();
}

// SmolLM2-135M-Instruct as distributed (Q4_1, from the model directory), requantized in memory to `type`; each
// type made once per process.
inline std::shared_ptr<const LlamaWeights> smollm2(DType type) {
  static std::map<int, std::shared_ptr<const LlamaWeights>> cache;
  auto& w = cache[static_cast<int>(type)];
  if (!w) {
    ThreadPool pool(2);
    auto src = std::make_shared<const LlamaWeights>(
        load_weights((model_dir() / "gguf/smollm2-135m-instruct-q4_1.gguf").string()));
    w = type == DType::Q4_1 ? src : std::make_shared<const LlamaWeights>(requantize(src, type, &pool));
  }
  return w;
}

}  // namespace edgespec::bench
