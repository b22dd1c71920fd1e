// Small helpers shared by the command-line tools: flag parsing with clear errors, JSON string output,
// and opening a model together with its tokenizer.
#pragma once

#include <charconv>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <edgespec/edgespec.hpp>

namespace edgespec::cli {

// --name value / --name=value / --flag; positional arguments kept in order.
class Args {
 public:
  Args(int argc, char** argv, std::set<std::string> with_value, std::set<std::string> flags) {
    for (int i = 1; i < argc; ++i) {
      std::string a = argv[i];
      if (a.size() > 2 && a.rfind("--", 0) == 0) {
        std::string key = a.substr(2), val;
        const auto eq = key.find('=');
        const bool inline_val = eq != std::string::npos;
        if (inline_val) {
          val = key.substr(eq + 1);
          key = key.substr(0, eq);
        }
        if (flags.count(key) != 0) {
          ES_CHECK(!inline_val, "option --", key, " takes no value");
          values_[key] = "1";
        } else if (with_value.count(key) != 0) {
          if (!inline_val) {
            ES_CHECK(i + 1 < argc, "option --", key, " needs a value");
            val = argv[++i];
          }
          values_[key] = val;
          every_[key].push_back(val);
        } else {
          throw_error("unknown option --", key, " (see --help)");
        }
      } else if (a == "-n" || a == "-o" || a == "-t") {
        ES_CHECK(i + 1 < argc, "option ", a, " needs a value");
        values_[a.substr(1)] = argv[++i];
      } else if (a == "-h") {
        values_["help"] = "1";
      } else {
        positional_.push_back(a);
      }
    }
  }
  [[nodiscard]] bool has(const std::string& k) const { return values_.count(k) != 0; }
  [[nodiscard]] std::string str(const std::string& k, std::string def = "") const {
    const auto it = values_.find(k);
    return it == values_.end() ? def : it->second;
  }
  [[nodiscard]] std::string required(const std::string& k) const {
    ES_CHECK(has(k), "missing required option --", k, " (see --help)");
    return str(k);
  }
  template <class T>
  [[nodiscard]] T num(const std::string& k, T def, T lo, T hi) const {
    if (!has(k)) return def;
    const std::string s = str(k);
    T v{};
    const auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    ES_CHECK(ec == std::errc() && p == s.data() + s.size(), "option --", k, ": '", s, "' is not a valid number");
    ES_CHECK(v >= lo && v <= hi, "option --", k, " = ", s, " is out of range [", lo, ", ", hi, "]");
    return v;
  }
  [[nodiscard]] const std::vector<std::string>& positional() const { return positional_; }
  // Every value of an option that may repeat (--draft A --draft B), in order; str() gives the last.
  [[nodiscard]] std::vector<std::string> all(const std::string& k) const {
    const auto it = every_.find(k);
    return it == every_.end() ? std::vector<std::string>{} : it->second;
  }

 private:
  std::map<std::string, std::string> values_;
  std::map<std::string, std::vector<std::string>> every_;
  std::vector<std::string> positional_;
};

// JSON string literal; invalid UTF-8 bytes become U+FFFD so the output is always valid JSON.
inline std::string json_string(std::string_view s) {
  std::string out = "\"";
  for (std::size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      switch (c) {
        case '"': out += "\\\""; break;
        case '\\': out += "\\\\"; break;
        case '\n': out += "\\n"; break;
        case '\r': out += "\\r"; break;
        case '\t': out += "\\t"; break;
        default:
          if (c < 0x20) {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\u%04x", c);
            out += buf;
          } else {
            out += static_cast<char>(c);
          }
      }
      ++i;
      continue;
    }
    const int len = c >= 0xf0 && c < 0xf5 ? 4 : c >= 0xe0 ? 3 : c >= 0xc2 && c < 0xe0 ? 2 : 0;
    bool ok = len > 0 && i + static_cast<std::size_t>(len) <= s.size();
    for (int k = 1; ok && k < len; ++k) ok = (static_cast<unsigned char>(s[i + k]) & 0xc0) == 0x80;
    if (ok) {
      out.append(s.substr(i, static_cast<std::size_t>(len)));
      i += static_cast<std::size_t>(len);
    } else {
      out += "\xef\xbf\xbd";
      ++i;
    }
  }
  return out + "\"";
}

template <class T>
std::string json_array(const std::vector<T>& v) {
  std::string s = "[";
  for (std::size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + std::to_string(v[i]);
  return s + "]";
}

inline std::string json_number(double x) {
  if (!std::isfinite(x)) return "null";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.6g", x);
  return buf;
}

// The tokenizer for a model: from --tokenizer FILE (llama2.c tokenizer.bin), else the GGUF's embedded vocab.
inline Tokenizer open_tokenizer(const LlamaWeights& w, const std::string& tokenizer_path) {
  if (!tokenizer_path.empty()) {
    if (tokenizer_path.size() >= 5 && tokenizer_path.substr(tokenizer_path.size() - 5) == ".gguf")
      return Tokenizer(vocab_from_gguf(GgufFile(tokenizer_path)));
    return Tokenizer(load_llama2c_tokenizer(tokenizer_path, w.config.vocab_size));
  }
  ES_CHECK(w.gguf != nullptr, w.path, ": a ", format_name(w.format),
           " file has no vocabulary: pass --tokenizer FILE (llama2.c tokenizer.bin)");
  return Tokenizer(vocab_from_gguf(*w.gguf));
}

// Runs main_body, turning edgespec errors into "error: ..." and exit code 1.
template <class F>
int guarded_main(F&& main_body) {
  try {
    return main_body();
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
}

}  // namespace edgespec::cli
