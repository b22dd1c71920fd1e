// Shared helpers for tests: where the reference models live.
#pragma once

#include <cstdlib>
#include <filesystem>
#include <string>

namespace edgespec::test {

// EDGESPEC_MODEL_DIR, else ../shared/models relative to the working directory's ancestors.
inline std::filesystem::path model_dir() {
  if (const char* env = std::getenv("EDGESPEC_MODEL_DIR"); env != nullptr && *env != '\0') return env;
  for (auto p = std::filesystem::current_path(); !p.empty() && p != p.root_path(); p = p.parent_path())
    if (std::filesystem::exists(p / "../shared/models")) return p / "../shared/models";
  return "../shared/models";
}
inline std::filesystem::path golden_dir() {
  if (const char* env = std::getenv("EDGESPEC_GOLDEN_DIR"); env != nullptr && *env != '\0') return env;
  return model_dir() / "../golden";
}
inline std::string model_path(const std::string& rel) { return (model_dir() / rel).string(); }

}  // namespace edgespec::test
