// N-gram lookup drafting ("prompt lookup decoding", Saxena 2023; llama.cpp's lookup examples): a drafter that
// costs no model. The continuation of the context's last n tokens is guessed to be what followed their most
// recent earlier occurrence in the context itself (prompt, or text generated so far):
//
//   context  ... a b c X Y Z ... a b c |          last n = 3 tokens: "a b c"
//   draft                                X Y Z     the tokens after the latest earlier "a b c"
//
// n runs from max_n down to min_n until a match is found; no match drafts nothing (the round is then an
// ordinary decode step of the target). The draft distribution is a point mass on each drafted token, so
// stochastic verification accepts d with probability p(d) and resamples from p with d removed (verify.hpp).
// Cost: O(len * n) token comparisons per round, negligible next to a forward pass.
#pragma once

#include <algorithm>
#include <cstdint>
#include <span>
#include <vector>

#include "edgespec/core/error.hpp"

namespace edgespec {

struct NGramLookup {
  int max_n = 3;  // longest n-gram matched
  int min_n = 1;  // shortest n-gram tried before giving up

  void check() const {
    ES_CHECK(min_n >= 1 && min_n <= max_n && max_n <= 64, "n-gram drafter: need 1 <= min_n <= max_n <= 64 (min_n ",
             min_n, ", max_n ", max_n, ")");
  }

  // Appends at most `count` draft tokens for `context` to `out`; returns how many.
  int draft(std::span<const std::int32_t> context, int count, std::vector<std::int32_t>& out) const {
    const auto len = static_cast<std::ptrdiff_t>(context.size());
    if (count <= 0) return 0;
    for (int n = std::min<std::ptrdiff_t>(max_n, len - 1); n >= min_n; --n) {
      const auto tail = context.last(static_cast<std::size_t>(n));
      // Latest start i < len - n whose n tokens equal the tail; the token after them exists by construction.
      for (std::ptrdiff_t i = len - n - 1; i >= 0; --i) {
        if (!std::equal(tail.begin(), tail.end(), context.begin() + i)) continue;
        const std::ptrdiff_t from = i + n;
        const std::ptrdiff_t take = std::min<std::ptrdiff_t>(count, len - from);
        out.insert(out.end(), context.begin() + from, context.begin() + from + take);
        return static_cast<int>(take);
      }
    }
    return 0;
  }
};

}  // namespace edgespec
