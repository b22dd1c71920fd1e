// Reads ../shared/golden/*.jsonl (llama.cpp reference continuations, see its README): one object per line with
// prompt, prompt_tokens, greedy_tokens, first_step_top5 ([[id, logit] x 5] for the first 3 steps) and, in the
// SmolLM2 files, chat (the prompt is one user message wrapped by the model's chat template).
#pragma once

#include <cstdint>
#include <fstream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "test_util.hpp"

namespace edgespec::test {

struct GoldenCase {
  std::string prompt;
  bool chat = false;
  std::vector<std::int32_t> prompt_tokens;
  std::vector<std::int32_t> greedy_tokens;
  std::vector<std::vector<std::pair<std::int32_t, float>>> top5;  // per step
};

inline std::vector<GoldenCase> load_golden(const std::string& file) {
  std::ifstream in(golden_dir() / file);
  if (!in) throw std::runtime_error("cannot open golden file " + (golden_dir() / file).string());
  std::vector<GoldenCase> cases;
  std::string line;
  while (std::getline(in, line)) {
    if (line.find('{') == std::string::npos) continue;
    const nlohmann::json j = nlohmann::json::parse(line);
    GoldenCase g;
    g.prompt = j.at("prompt").get<std::string>();
    g.chat = j.value("chat", false);
    g.prompt_tokens = j.at("prompt_tokens").get<std::vector<std::int32_t>>();
    g.greedy_tokens = j.at("greedy_tokens").get<std::vector<std::int32_t>>();
    for (const auto& step : j.at("first_step_top5")) {
      g.top5.emplace_back();
      for (const auto& p : step) g.top5.back().emplace_back(p.at(0).get<std::int32_t>(), p.at(1).get<float>());
    }
    cases.push_back(std::move(g));
  }
  return cases;
}

}  // namespace edgespec::test
