// Reads ../shared/golden/*.jsonl (llama.cpp reference continuations): one object per line with
// prompt, prompt_tokens, greedy_tokens, first_step_top5 ([[id, logit] x 5] for the first 3 steps).
#pragma once

#include <cctype>
#include <cstdint>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "test_util.hpp"

namespace edgespec::test {

struct GoldenCase {
  std::string prompt;
  std::vector<std::int32_t> prompt_tokens;
  std::vector<std::int32_t> greedy_tokens;
  std::vector<std::vector<std::pair<std::int32_t, float>>> top5;  // per step
};

namespace detail {
// A minimal parser for the value shapes these files use: strings, numbers, nested arrays.
struct JsonCursor {
  const std::string& s;
  std::size_t i = 0;
  void ws() {
    while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) ++i;
  }
  void expect(char c) {
    ws();
    if (i >= s.size() || s[i] != c) throw std::runtime_error(std::string("golden: expected '") + c + "'");
    ++i;
  }
  bool peek(char c) {
    ws();
    return i < s.size() && s[i] == c;
  }
  std::string str() {
    expect('"');
    std::string out;
    while (i < s.size() && s[i] != '"') {
      if (s[i] == '\\') {
        ++i;
        const char e = s[i++];
        if (e == 'n') out += '\n';
        else if (e == 't') out += '\t';
        else if (e == 'u') {  // BMP code point -> UTF-8
          const unsigned cp = static_cast<unsigned>(std::stoul(s.substr(i, 4), nullptr, 16));
          i += 4;
          if (cp < 0x80) out += static_cast<char>(cp);
          else if (cp < 0x800) { out += static_cast<char>(0xc0 | (cp >> 6)); out += static_cast<char>(0x80 | (cp & 0x3f)); }
          else { out += static_cast<char>(0xe0 | (cp >> 12)); out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f)); out += static_cast<char>(0x80 | (cp & 0x3f)); }
        } else out += e;
      } else {
        out += s[i++];
      }
    }
    ++i;
    return out;
  }
  double num() {
    ws();
    std::size_t used = 0;
    const double v = std::stod(s.substr(i, 40), &used);
    i += used;
    return v;
  }
  template <class F>
  void array(F&& each) {
    expect('[');
    if (peek(']')) { ++i; return; }
    for (;;) {
      each();
      if (peek(',')) { ++i; continue; }
      expect(']');
      return;
    }
  }
};
}  // namespace detail

inline std::vector<GoldenCase> load_golden(const std::string& file) {
  std::ifstream in(golden_dir() / file);
  if (!in) throw std::runtime_error("cannot open golden file " + (golden_dir() / file).string());
  std::vector<GoldenCase> cases;
  std::string line;
  while (std::getline(in, line)) {
    if (line.find('{') == std::string::npos) continue;
    GoldenCase g;
    detail::JsonCursor c{line};
    c.expect('{');
    for (;;) {
      const std::string key = c.str();
      c.expect(':');
      auto ints = [&](std::vector<std::int32_t>& v) { c.array([&] { v.push_back(static_cast<std::int32_t>(c.num())); }); };
      if (key == "prompt") g.prompt = c.str();
      else if (key == "prompt_tokens") ints(g.prompt_tokens);
      else if (key == "greedy_tokens") ints(g.greedy_tokens);
      else if (key == "first_step_top5")
        c.array([&] {
          g.top5.emplace_back();
          c.array([&] {
            std::pair<std::int32_t, float> p;
            c.expect('[');
            p.first = static_cast<std::int32_t>(c.num());
            c.expect(',');
            p.second = static_cast<float>(c.num());
            c.expect(']');
            g.top5.back().push_back(p);
          });
        });
      else throw std::runtime_error("golden: unknown key " + key);
      if (c.peek(',')) { ++c.i; continue; }
      c.expect('}');
      break;
    }
    cases.push_back(std::move(g));
  }
  return cases;
}

}  // namespace edgespec::test
