// Runtime errors: every failure a user can cause (bad file, wrong shape, bad option) is an edgespec::Error
// whose message names the file, the field and the expected value. Never a crash, never a silent wrong answer.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace edgespec {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

namespace detail {
template <class... Parts>
[[nodiscard]] std::string concat(Parts&&... parts) {
  std::ostringstream os;
  (os << ... << std::forward<Parts>(parts));
  return os.str();
}
}  // namespace detail

// throw_error("gguf: ", path, ": tensor '", name, "' offset ", off, " is past the end of the file")
template <class... Parts>
[[noreturn]] void throw_error(Parts&&... parts) {
  throw Error(detail::concat(std::forward<Parts>(parts)...));
}

// ES_CHECK(cond, parts...): throw edgespec::Error(parts...) unless cond holds.
#define ES_CHECK(cond, ...)                   \
  do {                                        \
    if (!(cond)) ::edgespec::throw_error(__VA_ARGS__); \
  } while (0)

}  // namespace edgespec
