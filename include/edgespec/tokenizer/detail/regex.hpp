// A small backtracking regex engine for the pre-tokenizer regexes llama.cpp runs through std::regex.
//
// llama.cpp (unicode_regex_split) hands every regex it has no hand-written splitter for to std::regex with
// ECMAScript syntax, over one of two views of the text, one unit per code point:
//
//   collapsed (the regex uses \p{L} \p{N} \p{P} \p{M} or \p{S}):  ASCII stays itself; any other code point becomes
//       0x0B if it is White_Space, else 0xD1 / 0xD2 / 0xD3 / 0xD4 / 0xD5 for N / L / P / M / S and 0xD0 for the
//       rest; \p{X} matches its byte or the ASCII members llama.cpp lists for X (\p{S} there lacks '~').
//   wide (no \p{..}):  the code points themselves, non-ASCII White_Space replaced by 0x0B.
//
// \s is ASCII whitespace [\t\n\v\f\r ] in both (std::regex's classic-locale ctype). This engine parses the same
// regex strings, builds the same views, and searches like std::regex_iterator: leftmost start, then the first
// match in backtracking (ECMAScript) priority order. Supported: literals, escapes, [...] classes with ranges and
// negation, \s \S \d \D \p{L,N,P,M,S}, groups (...) (?:...), lookahead (?=...) (?!...), | and greedy ? * + {n}
// {n,} {n,m}, and $. Anything else (lazy quantifiers, backreferences, '.', quantified sub-patterns that can match
// empty) is refused when the regex is compiled.
#pragma once

#ifndef EDGESPEC_TOKENIZER_DETAIL_OK
#error "edgespec/tokenizer/detail/ is internal: include edgespec/tokenizer/tokenizer.hpp"
#endif

#include <algorithm>
#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "edgespec/core/error.hpp"
#include "edgespec/tokenizer/detail/unicode.hpp"

namespace edgespec::detail {

// Units of the collapsed view for non-ASCII code points (llama.cpp's k_ucat_cpt and its fallbacks).
inline constexpr std::uint8_t kCollapsedSpace = 0x0B;
inline constexpr std::array<std::uint8_t, 6> kCollapsedByClass = {0xD0, 0xD2, 0xD1, 0xD3, 0xD4, 0xD5};  // CptClass order

// A set of units: a bitmap for units < 256 and sorted, disjoint ranges for the rest.
class UnitSet {
 public:
  void add(std::uint32_t lo, std::uint32_t hi) {  // [lo, hi]
    for (std::uint32_t u = lo; u <= hi && u < 256; ++u) low_[u >> 6] |= std::uint64_t{1} << (u & 63);
    if (hi >= 256) high_.emplace_back(std::max<std::uint32_t>(lo, 256), hi);
  }
  void add(const UnitSet& o) {
    for (int i = 0; i < 4; ++i) low_[i] |= o.low_[i];
    high_.insert(high_.end(), o.high_.begin(), o.high_.end());
  }
  // Complement over all units; call after the last add().
  void finish(bool negate) {
    std::sort(high_.begin(), high_.end());
    std::vector<std::pair<std::uint32_t, std::uint32_t>> merged;
    for (const auto& r : high_) {
      if (!merged.empty() && r.first <= merged.back().second + 1) merged.back().second = std::max(merged.back().second, r.second);
      else merged.push_back(r);
    }
    if (negate) {
      for (auto& w : low_) w = ~w;
      std::vector<std::pair<std::uint32_t, std::uint32_t>> inv;
      std::uint32_t next = 256;
      for (const auto& r : merged) {
        if (r.first > next) inv.emplace_back(next, r.first - 1);
        next = r.second + 1;
      }
      if (next <= 0x10FFFF) inv.emplace_back(next, 0x10FFFF);
      merged = std::move(inv);
    }
    high_ = std::move(merged);
  }
  [[nodiscard]] bool has(std::uint32_t u) const noexcept {
    if (u < 256) return (low_[u >> 6] >> (u & 63)) & 1;
    const auto it = std::upper_bound(high_.begin(), high_.end(), std::make_pair(u, 0xFFFFFFFFu));
    return it != high_.begin() && u <= std::prev(it)->second;
  }
  [[nodiscard]] bool any_high() const noexcept { return !high_.empty(); }

 private:
  std::array<std::uint64_t, 4> low_{};
  std::vector<std::pair<std::uint32_t, std::uint32_t>> high_;
};

class Regex {
 public:
  enum class View : std::uint8_t { Collapsed, Wide };

  // `pattern` is UTF-8, written as llama.cpp's regex_exprs strings are. Throws edgespec::Error naming the pattern.
  explicit Regex(std::string_view pattern) : pattern_(pattern) {
    for (const std::string_view cat : {"\\p{N}", "\\p{L}", "\\p{P}", "\\p{M}", "\\p{S}"})
      if (pattern.find(cat) != std::string_view::npos) view_ = View::Collapsed;
    std::size_t i = 0;
    while (i < pattern.size()) {
      const Utf8Cpt u = decode_utf8(pattern, i);
      ES_CHECK(u.cp != kReplacementChar || u.len != 1, "regex '", pattern_, "': malformed UTF-8 at byte ", i);
      ES_CHECK(view_ == View::Wide || u.cp < 0x80, "regex '", pattern_,
               "': non-ASCII characters and \\p{..} categories in one regex (llama.cpp refuses this too)");
      pat_.push_back(u.cp);
      i += u.len;
    }
    std::unique_ptr<Node> root = parse_alt();
    ES_CHECK(pos_ == pat_.size(), "regex '", pattern_, "': unexpected ')' at code point ", pos_);
    progs_.emplace_back();
    compile_program(*root, 0);
    ES_CHECK(!nullable(*root), "regex '", pattern_, "' can match the empty string, which is not supported");
    first_ = first_set(0);
  }

  [[nodiscard]] View view() const noexcept { return view_; }
  [[nodiscard]] const std::string& pattern() const noexcept { return pattern_; }

  // Scratch space for matching: one per thread, reused across calls.
  struct Scratch {
    std::vector<std::pair<std::uint32_t, std::uint32_t>> stack;  // (pc, position) backtrack points
    std::vector<std::uint64_t> failed;  // memo: bit (position - b) * program size + pc
  };

  // Appends to `ends` the end of every piece of units[b, e) as std::regex_iterator over that range cuts it: each
  // match is a piece and so is each gap between matches (llama.cpp's unicode_regex_split_stl).
  //
  // Long pieces keep a memo of the (pc, position) states already explored: with no captures or backreferences,
  // whether a state reaches Match depends on that pair alone, so a state seen once and given up on fails again,
  // from any start. Without it a regex like \s+$ would be quadratic in a long run of spaces that does not reach
  // the piece's end (std::regex is). A state on the path of a match may be reached again only at the match's
  // end, where the next search starts, so those states are forgotten after each match.
  void split(const std::uint32_t* units, std::uint32_t b, std::uint32_t e, std::vector<std::uint32_t>& ends,
             Scratch& scratch) const {
    const std::size_t n_pc = progs_[0].size();
    Memo memo;
    if (e - b >= kMemoMinLength) {
      scratch.failed.assign(((e - b + 1) * n_pc + 63) / 64, 0);
      memo = {scratch.failed.data(), b, n_pc};
    }
    std::uint32_t last = b;
    for (std::uint32_t s = b; s < e; ++s) {
      if (!may_start(units[s])) continue;
      std::uint32_t m = 0;
      if (!run(0, units, s, e, m, scratch, memo)) continue;
      if (s > last) ends.push_back(s);
      ends.push_back(m);
      last = m;
      s = m - 1;  // matches are never empty
      if (memo.bits)
        for (std::size_t pc = 0; pc < n_pc; ++pc) memo.clear(pc, m);
    }
    if (last < e) ends.push_back(e);
  }

 private:
  enum class Op : std::uint8_t { Set, Split, Jmp, Look, End, Match };
  struct Inst {
    Op op;
    bool negate = false;  // Look: (?!...)
    std::uint32_t x = 0, y = 0;  // Set: set index; Split: preferred / other pc; Jmp: pc; Look: program index
  };
  using Program = std::vector<Inst>;

  static constexpr std::uint32_t kMemoMinLength = 256;  // shorter pieces cannot take long without it
  struct Memo {
    std::uint64_t* bits = nullptr;  // nullptr: no memo
    std::uint32_t b = 0;
    std::size_t n_pc = 0;
    // True if (pc, at) was seen before; marks it.
    bool seen(std::size_t pc, std::uint32_t at) const noexcept {
      const std::size_t i = (at - b) * n_pc + pc;
      const std::uint64_t bit = std::uint64_t{1} << (i & 63);
      const bool was = bits[i >> 6] & bit;
      bits[i >> 6] |= bit;
      return was;
    }
    void clear(std::size_t pc, std::uint32_t at) const noexcept {
      const std::size_t i = (at - b) * n_pc + pc;
      bits[i >> 6] &= ~(std::uint64_t{1} << (i & 63));
    }
  };

  struct Node {
    enum Kind { Alt, Cat, Rep, Set, Look, End } kind;
    std::vector<std::unique_ptr<Node>> kids;
    std::uint32_t set = 0, min = 0, max = 0;  // Rep: max == kInf for no bound
    bool negate = false;
  };
  static constexpr std::uint32_t kInf = 0xFFFFFFFFu;

  // ---- parsing ----
  [[nodiscard]] bool at(std::uint32_t c) const noexcept { return pos_ < pat_.size() && pat_[pos_] == c; }
  [[noreturn]] void fail(const char* what) const {
    throw_error("regex '", pattern_, "': ", what, " at code point ", pos_);
  }
  std::uint32_t next() {
    if (pos_ >= pat_.size()) fail("unexpected end");
    return pat_[pos_++];
  }

  std::unique_ptr<Node> parse_alt() {
    auto alt = std::make_unique<Node>(Node{Node::Alt, {}});
    alt->kids.push_back(parse_cat());
    while (at('|')) {
      ++pos_;
      alt->kids.push_back(parse_cat());
    }
    return alt;
  }
  std::unique_ptr<Node> parse_cat() {
    auto cat = std::make_unique<Node>(Node{Node::Cat, {}});
    while (pos_ < pat_.size() && !at('|') && !at(')')) {
      std::unique_ptr<Node> atom = parse_atom();
      while (pos_ < pat_.size()) {
        std::uint32_t lo, hi;
        if (at('?')) lo = 0, hi = 1;
        else if (at('*')) lo = 0, hi = kInf;
        else if (at('+')) lo = 1, hi = kInf;
        else if (at('{')) {
          ++pos_;
          lo = parse_number();
          hi = lo;
          if (at(',')) {
            ++pos_;
            hi = at('}') ? kInf : parse_number();
          }
          if (!at('}') || hi < lo) fail("bad {n,m} quantifier");
        } else break;
        ++pos_;  // the quantifier's last character
        if (at('?')) fail("lazy quantifiers are not supported");
        if (atom->kind == Node::Look || atom->kind == Node::End) fail("quantified assertion");
        if (hi == kInf && nullable(*atom)) fail("a repeated sub-pattern that can match empty");
        auto rep = std::make_unique<Node>(Node{Node::Rep, {}});
        rep->kids.push_back(std::move(atom));
        rep->min = lo, rep->max = hi;
        atom = std::move(rep);
      }
      cat->kids.push_back(std::move(atom));
    }
    return cat;
  }
  std::uint32_t parse_number() {
    std::uint32_t n = 0;
    if (!(pos_ < pat_.size() && pat_[pos_] >= '0' && pat_[pos_] <= '9')) fail("expected a number");
    while (pos_ < pat_.size() && pat_[pos_] >= '0' && pat_[pos_] <= '9') n = n * 10 + (pat_[pos_++] - '0');
    if (n > 1000) fail("repeat count above 1000");
    return n;
  }
  std::unique_ptr<Node> parse_atom() {
    const std::uint32_t c = next();
    if (c == '(') {
      std::unique_ptr<Node> inner;
      bool look = false, negate = false;
      if (at('?')) {
        ++pos_;
        const std::uint32_t k = next();
        if (k == '=' || k == '!') look = true, negate = k == '!';
        else if (k != ':') fail("unsupported (? group");
      }
      inner = parse_alt();
      if (next() != ')') fail("missing ')'");
      if (!look) return inner;
      auto n = std::make_unique<Node>(Node{Node::Look, {}});
      n->kids.push_back(std::move(inner));
      n->negate = negate;
      return n;
    }
    if (c == '$') return std::make_unique<Node>(Node{Node::End, {}});
    if (c == '[') return set_node(parse_class());
    if (c == '.' || c == '^' || c == ')' || c == '*' || c == '+' || c == '?' || c == '{') fail("unsupported syntax");
    UnitSet s;
    if (c == '\\') s = parse_escape();
    else s.add(c, c);  // literals are never collapsed: llama.cpp refuses non-ASCII ones in collapsed regexes
    s.finish(false);
    return set_node(std::move(s));
  }
  std::unique_ptr<Node> set_node(UnitSet s) {
    sets_.push_back(std::move(s));
    auto n = std::make_unique<Node>(Node{Node::Set, {}});
    n->set = static_cast<std::uint32_t>(sets_.size() - 1);
    return n;
  }
  static void add_space(UnitSet& s) {
    s.add('\t', '\r');
    s.add(' ', ' ');
  }
  // \p{X} in the collapsed view: the category's byte and llama.cpp's ASCII members of X (k_ucat_map).
  void add_category(UnitSet& s, std::uint32_t x) const {
    const auto chars = [&](std::string_view cs) {
      for (const char ch : cs) s.add(static_cast<unsigned char>(ch), static_cast<unsigned char>(ch));
    };
    switch (x) {
      case 'N': s.add(0xD1, 0xD1), s.add('0', '9'); break;
      case 'L': s.add(0xD2, 0xD2), s.add('A', 'Z'), s.add('a', 'z'); break;
      case 'P':
        s.add(0xD3, 0xD3), s.add('!', '#'), s.add('%', '*'), s.add(',', '/'), s.add(':', ';'), s.add('?', '@');
        s.add('[', ']'), chars("_{}");
        break;
      case 'M': s.add(0xD4, 0xD4); break;
      case 'S': s.add(0xD5, 0xD5), chars("$+<=>^`|"); break;
      default: fail("unsupported \\p{..} category");
    }
  }
  // The code point of a one-character escape (\r \n \t \v \f and escaped punctuation), else -1.
  static std::int64_t single_escape(std::uint32_t c) noexcept {
    switch (c) {
      case 'r': return '\r';
      case 'n': return '\n';
      case 't': return '\t';
      case 'v': return '\v';
      case 'f': return '\f';
      default:
        if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return -1;
        return c;  // \\ \[ \] \- \$ \+ \^ \| \{ \} \( \) ...
    }
  }
  // After a '\\': a class escape (\s \S \d \D \p{X}) or a one-character escape. Returns an unfinished set.
  UnitSet parse_escape() {
    UnitSet s;
    const std::uint32_t c = next();
    const auto complement = [&](auto add) {
      UnitSet t;
      add(t);
      t.finish(true);
      s.add(t);
    };
    switch (c) {
      case 's': add_space(s); break;
      case 'S': complement([](UnitSet& t) { add_space(t); }); break;
      case 'd': s.add('0', '9'); break;
      case 'D': complement([](UnitSet& t) { t.add('0', '9'); }); break;
      case 'p': {
        if (next() != '{') fail("expected '{' after \\p");
        const std::uint32_t x = next();
        if (next() != '}') fail("unsupported \\p{..} category");
        add_category(s, x);
        break;
      }
      default: {
        const std::int64_t lit = single_escape(c);
        if (lit < 0) fail("unsupported escape");
        s.add(static_cast<std::uint32_t>(lit), static_cast<std::uint32_t>(lit));
      }
    }
    return s;
  }
  // After '['. ECMAScript rules: ']' always closes (so "[]" is empty), '-' is literal first, last or after a range.
  UnitSet parse_class() {
    UnitSet s;
    const bool negate = at('^');
    if (negate) ++pos_;
    // One class atom: a code point (>= 0), or -1 after adding a class escape to s.
    const auto atom = [&]() -> std::int64_t {
      const std::uint32_t c = next();
      if (c != '\\') return c;
      const std::uint32_t e = pos_ < pat_.size() ? pat_[pos_] : 0;
      if (e == 's' || e == 'S' || e == 'd' || e == 'D' || e == 'p') {
        s.add(parse_escape());
        return -1;
      }
      const std::int64_t lit = single_escape(next());
      if (lit < 0) fail("unsupported escape in [...]");
      return lit;
    };
    while (!at(']')) {
      const std::int64_t lo = atom();
      if (lo < 0) continue;
      if (at('-') && pos_ + 1 < pat_.size() && pat_[pos_ + 1] != ']') {
        ++pos_;
        const std::int64_t hi = atom();
        if (hi < 0) fail("a class escape cannot end a range");
        if (hi < lo) fail("range out of order");
        s.add(static_cast<std::uint32_t>(lo), static_cast<std::uint32_t>(hi));
      } else {
        s.add(static_cast<std::uint32_t>(lo), static_cast<std::uint32_t>(lo));
      }
    }
    ++pos_;  // ']'
    s.finish(negate);
    return s;
  }

  // ---- analysis and compilation ----
  [[nodiscard]] static bool nullable(const Node& n) {
    switch (n.kind) {
      case Node::Alt:
        for (const auto& k : n.kids)
          if (nullable(*k)) return true;
        return false;
      case Node::Cat:
        for (const auto& k : n.kids)
          if (!nullable(*k)) return false;
        return true;
      case Node::Rep: return n.min == 0 || nullable(*n.kids[0]);
      case Node::Set: return false;
      default: return true;  // assertions consume nothing
    }
  }

  void emit(std::size_t prog, Inst in) { progs_[prog].push_back(in); }
  [[nodiscard]] std::uint32_t here(std::size_t prog) const { return static_cast<std::uint32_t>(progs_[prog].size()); }

  void compile_program(const Node& n, std::size_t prog) {
    compile(n, prog);
    emit(prog, {Op::Match});
  }
  void compile(const Node& n, std::size_t prog) {
    switch (n.kind) {
      case Node::Set: emit(prog, {Op::Set, false, n.set}); break;
      case Node::End: emit(prog, {Op::End}); break;
      case Node::Cat:
        for (const auto& k : n.kids) compile(*k, prog);
        break;
      case Node::Alt: {
        // Split L1, next; L1: kid0; Jmp end; next: Split L2, ...; last kid falls through.
        std::vector<std::uint32_t> jumps;
        for (std::size_t i = 0; i < n.kids.size(); ++i) {
          if (i + 1 < n.kids.size()) {
            const std::uint32_t split = here(prog);
            emit(prog, {Op::Split, false, split + 1, 0});
            compile(*n.kids[i], prog);
            jumps.push_back(here(prog));
            emit(prog, {Op::Jmp});
            progs_[prog][split].y = here(prog);
          } else {
            compile(*n.kids[i], prog);
          }
        }
        for (const std::uint32_t j : jumps) progs_[prog][j].x = here(prog);
        break;
      }
      case Node::Rep: {
        const Node& kid = *n.kids[0];
        for (std::uint32_t i = 0; i < n.min; ++i) compile(kid, prog);
        if (n.max == kInf) {  // L: Split body, out; body; Jmp L
          const std::uint32_t split = here(prog);
          emit(prog, {Op::Split, false, split + 1, 0});
          compile(kid, prog);
          emit(prog, {Op::Jmp, false, split});
          progs_[prog][split].y = here(prog);
        } else {  // (kid (kid (...)?)?)? for the optional copies
          std::vector<std::uint32_t> splits;
          for (std::uint32_t i = n.min; i < n.max; ++i) {
            splits.push_back(here(prog));
            emit(prog, {Op::Split, false, here(prog) + 1, 0});
            compile(kid, prog);
          }
          for (const std::uint32_t s : splits) progs_[prog][s].y = here(prog);
        }
        break;
      }
      case Node::Look: {
        const std::size_t sub = progs_.size();
        progs_.emplace_back();
        compile_program(*n.kids[0], sub);
        emit(prog, {Op::Look, n.negate, static_cast<std::uint32_t>(sub)});
        break;
      }
    }
  }

  // Units a match can start with (assertions are looked through, so this is a superset).
  [[nodiscard]] UnitSet first_set(std::size_t prog) const {
    UnitSet s;
    std::vector<char> seen(progs_[prog].size(), 0);
    std::vector<std::uint32_t> todo = {0};
    while (!todo.empty()) {
      const std::uint32_t pc = todo.back();
      todo.pop_back();
      if (seen[pc]) continue;
      seen[pc] = 1;
      const Inst& in = progs_[prog][pc];
      switch (in.op) {
        case Op::Set: s.add(sets_[in.x]); break;
        case Op::Split: todo.push_back(in.x), todo.push_back(in.y); break;
        case Op::Jmp: todo.push_back(in.x); break;
        case Op::Look:
        case Op::End: todo.push_back(pc + 1); break;
        case Op::Match: break;  // unreachable first: the regex is not nullable
      }
    }
    s.finish(false);
    return s;
  }
  [[nodiscard]] bool may_start(std::uint32_t u) const noexcept { return first_.has(u); }

  // Backtracking run of program `prog` from units[s], the text ending at e. On success `m` is the match end.
  // `memo` (program 0 only) skips states already given up on.
  bool run(std::size_t prog, const std::uint32_t* units, std::uint32_t s, std::uint32_t e, std::uint32_t& m,
           Scratch& scratch, Memo memo) const {
    const Program& p = progs_[prog];
    auto& stack = scratch.stack;
    const std::size_t base = stack.size();
    stack.emplace_back(0, s);
    bool found = false;
    while (stack.size() > base && !found) {
      auto [pc, at] = stack.back();
      stack.pop_back();
      while (true) {
        if (memo.bits && memo.seen(pc, at)) break;
        const Inst& in = p[pc];
        if (in.op == Op::Set) {
          if (at >= e || !sets_[in.x].has(units[at])) break;
          ++at, ++pc;
        } else if (in.op == Op::Split) {
          stack.emplace_back(in.y, at);
          pc = in.x;
        } else if (in.op == Op::Jmp) {
          pc = in.x;
        } else if (in.op == Op::Look) {
          std::uint32_t unused = 0;
          if (run(in.x, units, at, e, unused, scratch, Memo{}) == in.negate) break;
          ++pc;
        } else if (in.op == Op::End) {
          if (at != e) break;
          ++pc;
        } else {  // Match
          m = at;
          found = true;
          break;
        }
      }
    }
    stack.resize(base);
    return found;
  }

  std::string pattern_;
  std::vector<std::uint32_t> pat_;
  std::size_t pos_ = 0;
  View view_ = View::Wide;
  std::vector<UnitSet> sets_;
  std::vector<Program> progs_;  // [0] the regex, then one per lookahead
  UnitSet first_;
};

}  // namespace edgespec::detail
