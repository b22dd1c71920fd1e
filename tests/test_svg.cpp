// The SVG chart writer for edgespec-plan --svg (examples/svg_chart.hpp): nice ticks and their labels, XML
// escaping, well-formed documents, points mapped inside the plot area, and degenerate data (empty, one point,
// equal values, NaN/inf) giving valid output.
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <map>
#include <random>
#include <regex>
#include <string>
#include <vector>

#include "svg_chart.hpp"

namespace {

namespace svg = edgespec::cli::svg;

// A small XML checker for what the writer emits: balanced elements with quoted attributes, one root <svg>,
// '&' only in the five entities, no '<' in text. Returns "" when well-formed, else what is wrong; counts
// the elements by name into `counts`.
std::string xml_problem(const std::string& doc, std::map<std::string, int>* counts = nullptr) {
  const std::regex entity("^&(amp|lt|gt|quot|apos);");
  const auto bad_amp = [&](std::size_t at) {
    return !std::regex_search(doc.begin() + static_cast<std::ptrdiff_t>(at), doc.end(), entity,
                              std::regex_constants::match_continuous);
  };
  std::vector<std::string> stack;
  int roots = 0;
  std::size_t i = 0;
  while (i < doc.size()) {
    if (doc[i] == '&' && bad_amp(i)) return "bare & at " + std::to_string(i);
    if (doc[i] == '>') return "bare > in text at " + std::to_string(i);
    if (doc[i] != '<') {
      ++i;
      continue;
    }
    if (doc.compare(i, 2, "</") == 0) {
      const std::size_t end = doc.find('>', i);
      if (end == std::string::npos) return "unterminated end tag";
      const std::string name = doc.substr(i + 2, end - i - 2);
      if (stack.empty() || stack.back() != name) return "</" + name + "> does not close the open element";
      stack.pop_back();
      i = end + 1;
      continue;
    }
    std::size_t j = i + 1;
    while (j < doc.size() && (std::isalnum(static_cast<unsigned char>(doc[j])) != 0 || doc[j] == '-')) ++j;
    const std::string name = doc.substr(i + 1, j - i - 1);
    if (name.empty()) return "bad tag at " + std::to_string(i);
    // Attributes: name="value" pairs up to > or />.
    bool self_closing = false;
    for (;;) {
      while (j < doc.size() && doc[j] == ' ') ++j;
      if (j >= doc.size()) return "unterminated tag " + name;
      if (doc[j] == '>') break;
      if (doc.compare(j, 2, "/>") == 0) {
        self_closing = true;
        ++j;
        break;
      }
      const std::size_t eq = doc.find('=', j);
      if (eq == std::string::npos || eq + 1 >= doc.size() || doc[eq + 1] != '"') return "bad attribute in " + name;
      const std::size_t close = doc.find('"', eq + 2);
      if (close == std::string::npos) return "unterminated attribute in " + name;
      for (std::size_t k = eq + 2; k < close; ++k) {
        if (doc[k] == '<' || doc[k] == '>') return "< or > inside an attribute of " + name;
        if (doc[k] == '&' && bad_amp(k)) return "bare & in an attribute of " + name;
      }
      j = close + 1;
      if (j < doc.size() && doc[j] != ' ' && doc[j] != '>' && doc[j] != '/') return "no space after attribute";
    }
    if (stack.empty()) {
      if (name != "svg") return "root element is <" + name + ">";
      if (++roots > 1) return "more than one root element";
    }
    if (counts != nullptr) ++(*counts)[name];
    if (!self_closing) stack.push_back(name);
    i = j + 1;
  }
  if (!stack.empty()) return "<" + stack.back() + "> not closed";
  if (roots != 1) return "no root element";
  return "";
}

void require_valid(const std::string& doc) {
  REQUIRE(doc.rfind("<svg", 0) == 0);
  REQUIRE(doc.size() > 7);
  CHECK(doc.substr(doc.size() - 7) == "</svg>\n");
  INFO(xml_problem(doc));
  CHECK(xml_problem(doc).empty());
  // No NaN or inf reached a number.
  static const std::regex numeric("(?:\\s(?:x|y|cx|cy|r|width|height|d|transform|viewBox))=\"([^\"]*)\"");
  for (auto it = std::sregex_iterator(doc.begin(), doc.end(), numeric); it != std::sregex_iterator(); ++it) {
    const std::string v = (*it)[1];
    INFO(v);
    CHECK(v.find("nan") == std::string::npos);
    CHECK(v.find("inf") == std::string::npos);
  }
}

bool is_nice_step(double step) {
  const double k = std::floor(std::log10(step) + 1e-9);
  const double m = step / std::pow(10.0, k);
  return std::abs(m - 1) < 1e-9 || std::abs(m - 2) < 1e-9 || std::abs(m - 5) < 1e-9;
}

struct Circle {
  double cx, cy;
};
// The circle markers of the plot (the legend's are left out).
std::vector<Circle> circles(const std::string& svg_doc) {
  static const std::regex re("<circle cx=\"([-0-9.]+)\" cy=\"([-0-9.]+)\"");
  const std::string doc = svg_doc.substr(0, svg_doc.find("class=\"legend\""));
  std::vector<Circle> out;
  for (auto it = std::sregex_iterator(doc.begin(), doc.end(), re); it != std::sregex_iterator(); ++it) {
    out.push_back({std::stod((*it)[1]), std::stod((*it)[2])});
  }
  return out;
}

std::size_t count(const std::string& s, const std::string& what) {
  std::size_t n = 0;
  for (std::size_t at = s.find(what); at != std::string::npos; at = s.find(what, at + 1)) ++n;
  return n;
}

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

}  // namespace

TEST_CASE("svg: nice ticks are 1/2/5 x 10^k multiples, about the asked count, inside the range") {
  CHECK(svg::nice_ticks(0, 1, 6) == std::vector<double>{0, 0.2, 0.4, 0.6, 0.8, 1.0});
  CHECK(svg::nice_ticks(0.8, 1.9, 6) == std::vector<double>{0.8, 1.0, 1.2, 1.4, 1.6, 1.8});
  CHECK(svg::nice_ticks(1, 0, 6) == svg::nice_ticks(0, 1, 6));
  CHECK(svg::nice_ticks(0.65, 8.35, 6) == std::vector<double>{1, 2, 3, 4, 5, 6, 7, 8});
  CHECK(svg::nice_ticks(-1.3, 0.4, 6) == std::vector<double>{-1.2, -1.0, -0.8, -0.6, -0.4, -0.2, 0, 0.2, 0.4});
  CHECK(svg::nice_ticks(-1.3, 0.4, 3) == std::vector<double>{-1, -0.5, 0});
  CHECK(svg::nice_ticks(0, 1, 11)[3] == 0.3);  // exact decimal, not 0.30000000000000004
  CHECK(svg::nice_ticks(0, 1000, 5) == std::vector<double>{0, 200, 400, 600, 800, 1000});
  CHECK(svg::nice_step(0, 1, 6) == 0.2);

  std::mt19937 rng(11);
  std::uniform_real_distribution<double> exp10(-6, 6), unit(-1, 1);
  for (int trial = 0; trial < 2000; ++trial) {
    const double scale = std::pow(10.0, exp10(rng));
    const double a = unit(rng) * scale, b = unit(rng) * scale;
    if (a == b) continue;
    const double lo = std::min(a, b), hi = std::max(a, b);
    const std::vector<double> t = svg::nice_ticks(lo, hi, 6);
    INFO("range [" << lo << ", " << hi << "]");
    REQUIRE(t.size() >= 4);
    REQUIRE(t.size() <= 10);  // 1/2/5 steps cannot always hit 5-8: e.g. [-4.9, 14.2] has 3 (step 5) or 10 (step 2)
    const double step = svg::nice_step(lo, hi, 6);
    CHECK(is_nice_step(step));
    const double eps = 1e-9 * step;
    CHECK(t.front() >= lo - eps);
    CHECK(t.back() <= hi + eps);
    CHECK(t.front() - step < lo + eps);  // no tick left out at either end
    CHECK(t.back() + step > hi - eps);
    for (std::size_t i = 0; i < t.size(); ++i) {
      CHECK(std::abs(t[i] / step - std::round(t[i] / step)) < 1e-6);
      if (i > 0) CHECK(std::abs(t[i] - t[i - 1] - step) < 1e-6 * step);
    }
  }
}

TEST_CASE("svg: nice ticks of degenerate ranges") {
  CHECK(svg::nice_ticks(2, 2, 5) == std::vector<double>{2});
  CHECK(svg::nice_ticks(0, 0, 5) == std::vector<double>{0});
  CHECK(svg::nice_ticks(kNaN, 1, 5).empty());
  CHECK(svg::nice_ticks(0, kInf, 5).empty());
  CHECK(svg::nice_step(3, 3, 5) == 0);
  CHECK(svg::nice_ticks(0, 1, 0).size() >= 2);  // a silly count still gives ticks
  CHECK(svg::nice_ticks(-1e308, 1e308, 6).size() <= 1000);
}

TEST_CASE("svg: tick labels carry only the digits the step needs") {
  CHECK(svg::format_tick(0.8, 0.2) == "0.8");
  CHECK(svg::format_tick(1.0, 0.2) == "1.0");
  CHECK(svg::format_tick(0.3, 0.1) == "0.3");
  CHECK(svg::format_tick(4, 2) == "4");
  CHECK(svg::format_tick(1000, 200) == "1000");
  CHECK(svg::format_tick(0.05, 0.05) == "0.05");
  CHECK(svg::format_tick(0.1, 0.05) == "0.10");
  CHECK(svg::format_tick(-1.5, 0.5) == "-1.5");
  CHECK(svg::format_tick(-0.0, 0.5) == "0.0");
  CHECK(svg::format_tick(0, 1) == "0");
  CHECK(svg::format_tick(2e7, 5e6) == "2e+07");
  CHECK(svg::format_tick(3, 0) == "3");
  for (const double v : svg::nice_ticks(0, 1, 11)) CHECK(svg::format_tick(v, 0.1).size() == 3);  // never 0.300000…4
}

TEST_CASE("svg: text is XML-escaped") {
  CHECK(svg::escape("a & b <c> \"d\" 'e'") == "a &amp; b &lt;c&gt; &quot;d&quot; &apos;e&apos;");
  CHECK(svg::escape(std::string("x\x01y\tz")) == "xy\tz");  // control characters XML forbids are dropped
  CHECK(svg::escape("\u00B15% q4_0") == "\u00B15% q4_0");    // UTF-8 kept

  svg::Chart c;
  c.title = "Speedup <A&B> \"q\"";
  c.x_label = "x < 1";
  c.y_label = "y & z";
  c.series.push_back({.name = "a<b", .points = {{1, 2, "p&q"}, {2, 3, ""}}});
  c.series.push_back({.name = "c>d", .points = {{1.5, 2.5, ""}}});
  const std::string doc = svg::render(c);
  require_valid(doc);
  CHECK(doc.find("Speedup &lt;A&amp;B&gt; &quot;q&quot;") != std::string::npos);
  CHECK(doc.find("x &lt; 1") != std::string::npos);
  CHECK(doc.find("y &amp; z") != std::string::npos);
  CHECK(doc.find("p&amp;q") != std::string::npos);
  CHECK(doc.find("a&lt;b") != std::string::npos);
  CHECK(doc.find("c&gt;d") != std::string::npos);
  CHECK(doc.find("<A&B>") == std::string::npos);
}

TEST_CASE("svg: a full chart is a well-formed document with the elements it needs") {
  svg::Chart c;
  c.title = "Predicted speedup by draft length";
  c.x_label = "draft length";
  c.y_label = "predicted speedup";
  for (const char* name : {"q8_0 copy", "q4_0 copy", "skip 20-29"}) {
    svg::Series s{.name = name, .points = {}, .line = true};
    for (int k = 1; k <= 8; ++k) s.points.push_back({static_cast<double>(k), 0.8 + 0.1 * k, ""});
    c.series.push_back(s);
  }
  const std::string doc = svg::render(c, 560, 400);
  require_valid(doc);
  std::map<std::string, int> n;
  REQUIRE(xml_problem(doc, &n).empty());
  CHECK(n["svg"] == 1);
  CHECK(n["clipPath"] == 1);
  CHECK(n["circle"] + n["rect"] + n["path"] >= 24);  // 24 markers, plus frame, grid and lines
  CHECK(doc.find("width=\"560\" height=\"400\" viewBox=\"0 0 560 400\"") != std::string::npos);
  for (const char* name : {"q8_0 copy", "q4_0 copy", "skip 20-29", c.title.c_str(), "draft length"}) {
    CHECK(doc.find(std::string(">") + name + "<") != std::string::npos);
  }
  CHECK(doc.find("rotate(-90") != std::string::npos);  // y label

  // The legend sits in the right margin, outside the plot area.
  const svg::Layout L = svg::layout(c, 560, 400);
  CHECK(L.legend);
  CHECK(L.legend_left > L.left + L.width);
  CHECK(L.legend_left < 560);

  // One named series: no legend.
  c.series.resize(1);
  const std::string one = svg::render(c);
  CHECK_FALSE(svg::layout(c, 560, 400).legend);
  CHECK(one.find(">q8_0 copy<") == std::string::npos);
}

TEST_CASE("svg: points map inside the plot area, in the right direction") {
  std::mt19937 rng(3);
  std::uniform_real_distribution<double> u(-5, 50);
  svg::Chart c;
  c.title = "scatter";
  c.series.push_back({.name = "a", .points = {}});
  c.series.push_back({.name = "b", .points = {}, .line = true, .highlight = false});
  for (auto& s : c.series) {
    for (int i = 0; i < 40; ++i) s.points.push_back({u(rng), u(rng) * 0.01, i % 5 == 0 ? "pt" : ""});
  }
  const svg::Layout L = svg::layout(c, 560, 400);
  CHECK(L.left > 0);
  CHECK(L.top > 0);
  CHECK(L.left + L.width < 560);
  CHECK(L.top + L.height < 400);
  for (const auto& s : c.series) {
    for (const auto& p : s.points) {
      CHECK(L.x(p.x) >= L.left);
      CHECK(L.x(p.x) <= L.left + L.width);
      CHECK(L.y(p.y) >= L.top);
      CHECK(L.y(p.y) <= L.top + L.height);
    }
  }
  CHECK(L.x(2) > L.x(1));
  CHECK(L.y(0.2) < L.y(0.1));  // up is smaller in SVG
  for (const double t : L.x_ticks) CHECK((t >= L.x.d0 && t <= L.x.d1));
  for (const double t : L.y_ticks) CHECK((t >= L.y.d0 && t <= L.y.d1));

  const std::string doc = svg::render(c, 560, 400);
  require_valid(doc);
  const std::vector<Circle> cs = circles(doc);
  CHECK(cs.size() >= 80);  // every point has a marker (series 0 has circles, grey ones are circles too)
  for (const Circle& m : cs) {
    CHECK(m.cx >= L.left - 0.01);
    CHECK(m.cx <= L.left + L.width + 0.01);
    CHECK(m.cy >= L.top - 0.01);
    CHECK(m.cy <= L.top + L.height + 0.01);
  }

  // Fixed axis ends are kept exactly.
  c.x_min = 0;
  c.x_max = 10;
  c.y_min = -1;
  const svg::Layout F = svg::layout(c, 560, 400);
  CHECK(F.x.d0 == 0);
  CHECK(F.x.d1 == 10);
  CHECK(F.y.d0 == -1);
  CHECK(F.x(0) == Approx(F.left));
  CHECK(F.x(10) == Approx(F.left + F.width));
  require_valid(svg::render(c));
}

TEST_CASE("svg: the diagonal, its band and the Pareto staircase") {
  svg::Chart c;
  c.title = "Predicted vs measured";
  c.diagonal = true;
  c.band = 0.05;
  c.series.push_back({.name = "runs", .points = {{1.0, 1.1, ""}, {1.5, 1.45, "q4"}, {1.9, 1.8, ""}}});
  const std::string doc = svg::render(c);
  require_valid(doc);
  CHECK(doc.find("stroke-dasharray") != std::string::npos);
  CHECK(doc.find("\u00B15%") != std::string::npos);
  const svg::Layout L = svg::layout(c, 560, 400);
  CHECK(L.x.d0 == L.y.d0);  // both axes share the range with the diagonal
  CHECK(L.x.d1 == L.y.d1);

  svg::Chart p;
  p.series.push_back({.name = "dominated", .points = {{0.3, 0.5, ""}, {0.5, 0.6, ""}}, .highlight = false});
  p.series.push_back({.name = "front", .points = {{0.4, 0.8, "b"}, {0.1, 0.5, "a"}}, .line = true, .step = true});
  const std::string pd = svg::render(p);
  require_valid(pd);
  CHECK(pd.find(svg::detail::kGrey) != std::string::npos);
  // The staircase goes along x first: M a, L (b.x, a.y), L b.
  const svg::Layout PL = svg::layout(p, 560, 400);
  const std::string stair = "M" + svg::detail::num(PL.x(0.1)) + " " + svg::detail::num(PL.y(0.5)) + "L" +
                            svg::detail::num(PL.x(0.4)) + " " + svg::detail::num(PL.y(0.5)) + "L" +
                            svg::detail::num(PL.x(0.4)) + " " + svg::detail::num(PL.y(0.8));
  CHECK(pd.find("d=\"" + stair + "\"") != std::string::npos);
}

TEST_CASE("svg: degenerate data gives valid documents") {
  svg::Chart empty;
  const std::string e = svg::render(empty);
  require_valid(e);
  CHECK(e.find("no data") != std::string::npos);

  svg::Chart empty_series;
  empty_series.series.resize(3);
  require_valid(svg::render(empty_series));

  svg::Chart one;
  one.series.push_back({.name = "one", .points = {{3, 3, "only"}}, .line = true});
  require_valid(svg::render(one));
  const svg::Layout L1 = svg::layout(one, 560, 400);
  CHECK(L1.x.d1 > L1.x.d0);
  CHECK(L1.y.d1 > L1.y.d0);
  CHECK(L1.x(3) == Approx(L1.left + L1.width / 2));

  svg::Chart equal;
  equal.series.push_back({.name = "flat", .points = {{1, 0, ""}, {1, 0, ""}, {1, 0, ""}}, .line = true});
  require_valid(svg::render(equal));
  const svg::Layout LE = svg::layout(equal, 560, 400);
  CHECK(LE.x.d1 > LE.x.d0);
  CHECK(LE.y.d1 > LE.y.d0);
  CHECK(LE.y_ticks.size() >= 3);

  svg::Chart odd;
  odd.diagonal = true;
  odd.band = 0.05;
  odd.series.push_back({.name = "a", .points = {{kNaN, 1, "nan"}, {1, kInf, ""}, {2, 2.1, ""}, {-kInf, kNaN, ""},
                                                {3, 2.9, ""}}, .line = true});
  odd.series.push_back({.name = "b", .points = {{kNaN, kNaN, ""}}});
  const std::string o = svg::render(odd);
  require_valid(o);
  CHECK(circles(o).size() == 2);                   // only the two finite points
  CHECK(o.find(">nan<") == std::string::npos);     // nor their labels

  svg::Chart all_nan;
  all_nan.series.push_back({.name = "x", .points = {{kNaN, kNaN, ""}, {kInf, 1, ""}}, .line = true});
  require_valid(svg::render(all_nan));

  svg::Chart fixed_equal;  // fixed ends that make an empty or reversed range
  fixed_equal.series.push_back({.name = "p", .points = {{1, 1, ""}}});
  fixed_equal.x_min = fixed_equal.x_max = 5;
  fixed_equal.y_min = 2;
  fixed_equal.y_max = 1;
  require_valid(svg::render(fixed_equal));
  const svg::Layout LF = svg::layout(fixed_equal, 560, 400);
  CHECK(LF.x.d1 > LF.x.d0);
  CHECK(LF.y.d0 == 1);
  CHECK(LF.y.d1 == 2);

  // Tiny canvas and a title far too long for it.
  svg::Chart tiny = one;
  tiny.title = std::string(300, 'T');
  require_valid(svg::render(tiny, 10, 10));
}

TEST_CASE("svg: a NaN in a line breaks it into pieces") {
  svg::Chart c;
  c.series.push_back({.name = "s", .points = {{1, 1, ""}, {2, 2, ""}, {3, kNaN, ""}, {4, 3, ""}, {5, 4, ""}},
                      .line = true});
  const std::string doc = svg::render(c);
  require_valid(doc);
  static const std::regex line("<path d=\"(M[^\"]*)\" stroke=\"#0072B2\"");
  std::smatch m;
  REQUIRE(std::regex_search(doc, m, line));
  CHECK(count(m[1], "M") == 2);
  CHECK(count(m[1], "L") == 2);
}

TEST_CASE("svg: panels lay several charts out in one document") {
  std::vector<svg::Chart> charts(3);
  for (std::size_t i = 0; i < charts.size(); ++i) {
    charts[i].title = "chart " + std::to_string(i);
    charts[i].series.push_back({.name = "s", .points = {{0, 0, ""}, {1, static_cast<double>(i), ""}}});
  }
  const std::string doc = svg::render_panels(charts, 2, 400, 300);
  require_valid(doc);
  std::map<std::string, int> n;
  REQUIRE(xml_problem(doc, &n).empty());
  CHECK(n["svg"] == 1);
  CHECK(n["clipPath"] == 3);
  CHECK(doc.find("width=\"800\" height=\"600\"") != std::string::npos);
  CHECK(doc.find("translate(0 0)") != std::string::npos);
  CHECK(doc.find("translate(400 0)") != std::string::npos);
  CHECK(doc.find("translate(0 300)") != std::string::npos);
  for (const char* id : {"c0-plot", "c1-plot", "c2-plot"}) CHECK(count(doc, std::string("id=\"") + id + "\"") == 1);

  require_valid(svg::render_panels({}));
  require_valid(svg::render_panels(charts, 0));   // at least one column
  require_valid(svg::render_panels(charts, 10));  // at most one row's worth
  CHECK(svg::render_panels(charts, 10, 400, 300).find("width=\"1200\" height=\"300\"") != std::string::npos);
}

TEST_CASE("svg: the checker itself rejects broken documents") {
  CHECK_FALSE(xml_problem("<svg><g></svg>").empty());
  CHECK_FALSE(xml_problem("<svg>a & b</svg>").empty());
  CHECK_FALSE(xml_problem("<svg><text x=\"1>a</text></svg>").empty());
  CHECK_FALSE(xml_problem("<svg></svg><svg></svg>").empty());
  CHECK(xml_problem("<svg a=\"1\"><g><rect x=\"1\"/></g>&amp;</svg>").empty());
}
