// What edgespec-profile and edgespec-plan share: prompt files, progress with an estimate of the time left, and
// running a command (edgespec-generate) to read its JSON.
#pragma once

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli.hpp"

#ifndef EDGESPEC_PROMPTS_DIR
#define EDGESPEC_PROMPTS_DIR ""
#endif

namespace edgespec::cli {

// One prompt per line; blank lines and lines starting with '#' are skipped; "\n" and "\t" are unescaped.
inline std::vector<std::string> read_prompts(const std::string& path) {
  std::ifstream in(path);
  ES_CHECK(in.good(), "cannot open prompt file '", path, "'");
  std::vector<std::string> out;
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line[0] == '#') continue;
    std::string p;
    for (std::size_t i = 0; i < line.size(); ++i) {
      if (line[i] == '\\' && i + 1 < line.size() && (line[i + 1] == 'n' || line[i + 1] == 't')) {
        p += line[++i] == 'n' ? '\n' : '\t';
      } else {
        p += line[i];
      }
    }
    out.push_back(p);
  }
  ES_CHECK(!out.empty(), "prompt file '", path, "' has no prompts");
  return out;
}

// The shipped prompt sets (examples/prompts/NAME.txt), found beside the sources or installed data.
inline std::string shipped_prompts(const std::string& name, const std::string& option) {
  const std::filesystem::path p = std::filesystem::path(EDGESPEC_PROMPTS_DIR) / (name + ".txt");
  ES_CHECK(std::filesystem::exists(p), "the shipped prompt set '", p.string(), "' is not there; give --", option,
           " FILE (one prompt per line)");
  return p.string();
}

// "[done/total] what ... 12.3 s elapsed, about 45 s left" on stderr, the estimate from the work done so far.
class Progress {
 public:
  explicit Progress(double total_work) : total_(total_work), t0_(std::chrono::steady_clock::now()) {}
  void step(const std::string& what, double work_done_now) {
    done_ += work_done_now;
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count();
    const double left = done_ > 0 ? elapsed * (total_ - done_) / done_ : 0.0;
    std::cerr << "\r\033[K[" << static_cast<int>(100.0 * done_ / total_ + 0.5) << "%] " << what << "  "
              << format_seconds(elapsed) << " elapsed, about " << format_seconds(std::max(0.0, left)) << " left"
              << std::flush;
  }
  void add(double more_work) { total_ += more_work; }  // the estimate of what is left changed
  void finish() const { std::cerr << "\n"; }
  static std::string format_seconds(double s) {
    char buf[32];
    if (s < 60) std::snprintf(buf, sizeof buf, "%.0f s", s);
    else std::snprintf(buf, sizeof buf, "%dm%02ds", static_cast<int>(s) / 60, static_cast<int>(s) % 60);
    return buf;
  }

 private:
  double total_, done_ = 0;
  std::chrono::steady_clock::time_point t0_;
};

// A word for a POSIX shell: 'it'\''s'.
inline std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (const char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

// The directory of this executable (the other edgespec tools are built beside it).
inline std::filesystem::path tool_dir() {
  std::error_code ec;
  const auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? std::filesystem::path(".") : self.parent_path();
}

// Runs a shell command and parses the last line of its stdout as JSON; throws with the command's stderr tail.
inline nlohmann::json run_json(const std::string& command) {
  const std::string err = (std::filesystem::temp_directory_path() / "edgespec-plan-stderr.txt").string();
  FILE* p = popen((command + " 2>" + shell_quote(err)).c_str(), "r");
  ES_CHECK(p != nullptr, "cannot run: ", command);
  std::string out;
  char buf[4096];
  while (std::size_t n = std::fread(buf, 1, sizeof buf, p)) out.append(buf, n);
  const int rc = pclose(p);
  std::ifstream e(err);
  const std::string errors((std::istreambuf_iterator<char>(e)), std::istreambuf_iterator<char>());
  ES_CHECK(rc == 0, "command failed (", rc, "): ", command, "\n", errors);
  const auto last = out.find_last_of('\n', out.size() >= 2 ? out.size() - 2 : 0);
  const std::string line = last == std::string::npos ? out : out.substr(last + 1);
  try {
    return nlohmann::json::parse(line);
  } catch (const nlohmann::json::exception& ex) {
    throw_error("command printed no JSON: ", command, " (", ex.what(), ")");
  }
}

}  // namespace edgespec::cli
