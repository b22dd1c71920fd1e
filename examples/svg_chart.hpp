// A small SVG chart writer for edgespec-plan --svg FILE: x/y charts with scatter points, lines (or a
// staircase) with markers, an optional y = x diagonal with a relative band, nice ticks, grid, axis labels,
// title and a legend in a reserved right margin. The planner draws predicted vs measured speedup
// (diagonal + band), predicted speedup against draft length (one line per drafter) and a Pareto front
// (front highlighted and joined by a step, dominated points grey).
//
//   namespace svg = edgespec::cli::svg;
//   svg::Chart c;
//   c.title = "Predicted speedup", c.x_label = "draft length", c.y_label = "speedup";
//   c.series.push_back({.name = "q8_0 copy", .points = {{1, 1.2, ""}, {2, 1.4, ""}}, .line = true});
//   std::ofstream("plan.svg") << svg::render(c);   // or svg::render_panels({c1, c2, c3}, 2)
//
// Only the standard library. Text is XML-escaped; NaN/inf points are skipped; empty or flat data get a
// padded range. There are no font metrics: text widths are estimated, so the layout leaves some slack.
#pragma once

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace edgespec::cli::svg {

struct Point {
  double x = 0, y = 0;
  std::string label;  // drawn as small text beside the point when non-empty
};

struct Series {
  std::string name;  // legend entry (the legend is shown when more than one series has a name)
  std::vector<Point> points;
  bool line = false;       // join the points in the given order
  bool markers = true;     // a marker at each point
  bool highlight = true;   // false: grey and drawn underneath (dominated points)
  bool step = false;       // with line: a staircase in x order, (x_i, y_i) -> (x_i+1, y_i) -> (x_i+1, y_i+1)
};

struct Chart {
  std::string title, x_label, y_label;
  std::vector<Series> series;
  bool diagonal = false;  // the y = x line (and both axes get the same automatic range)
  double band = 0;        // with diagonal: shade x * (1 - band) .. x * (1 + band), e.g. 0.05
  std::optional<double> x_min, x_max, y_min, y_max;  // fixed axis ends; automatic (data + 5%) otherwise
};

// Linear map from data [d0, d1] to pixels [r0, r1] (r0 > r1 for the y axis).
struct Scale {
  double d0 = 0, d1 = 1, r0 = 0, r1 = 1;
  double operator()(double v) const { return d1 == d0 ? (r0 + r1) / 2 : r0 + (v - d0) * (r1 - r0) / (d1 - d0); }
};

// XML text and attribute escaping; control characters that XML 1.0 forbids are dropped.
inline std::string escape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (const char ch : s) {
    switch (ch) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&apos;"; break;
      default:
        if (static_cast<unsigned char>(ch) >= 0x20 || ch == '\t' || ch == '\n' || ch == '\r') out += ch;
    }
  }
  return out;
}

namespace detail {

inline double pow10(int k) {
  double p = 1;
  for (int i = 0; i < (k < 0 ? -k : k); ++i) p *= 10;
  return p;
}

// m * 10^k, computed so that e.g. 3 * 10^-1 is the double nearest 0.3.
inline double scaled(double m, int k) { return k >= 0 ? m * pow10(k) : m / pow10(-k); }

inline std::string to_chars(double v, std::chars_format fmt, int precision) {
  char buf[64];
  const auto r = std::to_chars(buf, buf + sizeof buf, v, fmt, precision);
  return std::string(buf, r.ptr);
}

// Pixel coordinates: two decimals, trailing zeros dropped; independent of the C locale.
inline std::string num(double v) {
  if (!std::isfinite(v)) v = 0;
  std::string s = to_chars(std::round(v * 100) / 100, std::chars_format::fixed, 2);
  while (!s.empty() && s.back() == '0') s.pop_back();
  if (!s.empty() && s.back() == '.') s.pop_back();
  return s == "-0" || s.empty() ? "0" : s;
}

// Estimated width of a text (code points * 0.6 em: about DejaVu/Arial average, slightly generous).
inline double text_width(std::string_view s, double font_px) {
  std::size_t n = 0;
  for (const char ch : s) n += (static_cast<unsigned char>(ch) & 0xC0) != 0x80 ? 1 : 0;
  return static_cast<double>(n) * 0.6 * font_px;
}

// Shortens s (on code-point boundaries) with an ellipsis to fit max_px.
inline std::string fit(std::string s, double max_px, double font_px) {
  if (text_width(s, font_px) <= max_px) return s;
  while (!s.empty() && text_width(s, font_px) + 0.6 * font_px > max_px) {
    s.pop_back();
    while (!s.empty() && (static_cast<unsigned char>(s.back()) & 0xC0) == 0x80) s.pop_back();
    if (!s.empty() && (static_cast<unsigned char>(s.back()) & 0xC0) == 0xC0) s.pop_back();
  }
  return s + "\u2026";
}

// Okabe-Ito, yellow last (weak on white); grey for dominated points.
inline const char* color(std::size_t i) {
  static const char* const palette[] = {"#0072B2", "#E69F00", "#009E73", "#D55E00",
                                        "#CC79A7", "#56B4E9", "#000000", "#F0E442"};
  return palette[i % (sizeof palette / sizeof palette[0])];
}
inline constexpr const char* kGrey = "#A8A8A8";
inline constexpr const char* kFont = "DejaVu Sans, Helvetica, Arial, sans-serif";

inline bool finite(const Point& p) { return std::isfinite(p.x) && std::isfinite(p.y); }

}  // namespace detail

// A 1/2/5 x 10^k step giving about target_count ticks on [lo, hi]; 0 when the range is empty or not finite.
inline double nice_step(double lo, double hi, int target_count) {
  if (!std::isfinite(lo) || !std::isfinite(hi)) return 0;
  if (lo > hi) std::swap(lo, hi);
  if (!(hi - lo > 1e-12 * std::max(std::abs(lo), std::abs(hi))) || hi - lo < 1e-300 || !std::isfinite(hi - lo)) {
    return 0;
  }
  const int target = std::max(target_count, 2);
  const int k0 = static_cast<int>(std::floor(std::log10((hi - lo) / (target - 1))));
  double best = 0;
  double best_miss = 0;
  for (int k = k0 - 1; k <= k0 + 1; ++k) {  // smaller steps first: ties keep more ticks
    for (const double m : {1.0, 2.0, 5.0}) {
      const double step = detail::scaled(m, k);
      const double first = std::ceil(lo / step - 1e-9), last = std::floor(hi / step + 1e-9);
      const double n = last - first + 1, miss = n < target ? 1.5 * (target - n) : n - target;  // too few is worse
      if (best == 0 || miss < best_miss) best = step, best_miss = miss;
    }
  }
  return best;
}

// The multiples of step in [lo, hi] (computed as i * m * 10^k, so 0.1 steps give 0.3, not 0.30000000000000004).
inline std::vector<double> ticks_with_step(double lo, double hi, double step) {
  if (lo > hi) std::swap(lo, hi);
  if (!std::isfinite(lo) || !std::isfinite(hi)) return {};
  if (!(step > 0) || !std::isfinite(step)) return {lo};
  const int k = static_cast<int>(std::floor(std::log10(step) + 1e-9));
  const double m = std::round(step / detail::scaled(1, k));
  const double first = std::ceil(lo / step - 1e-9), last = std::floor(hi / step + 1e-9);
  std::vector<double> out;
  for (double i = first; i <= last && out.size() < 1000; ++i) {
    const double v = detail::scaled(i * m, k);
    out.push_back(v == 0 ? 0.0 : v);  // no -0
  }
  return out;
}

// Nice tick values in [lo, hi]: multiples of a 1/2/5 x 10^k step, about target_count of them.
// A single value {lo} when lo == hi; empty when not finite.
inline std::vector<double> nice_ticks(double lo, double hi, int target_count) {
  return ticks_with_step(lo, hi, nice_step(lo, hi, target_count));
}

// A tick label: as many decimals as the step needs, the same for all labels of an axis ("0.8", "1.0", "1.2";
// "2", "4"; "0.05", "0.10"); six significant digits with an exponent for very large or small magnitudes.
inline std::string format_tick(double v, double step) {
  if (v == 0) v = 0;  // no "-0"
  const double mag = std::max(std::abs(v), step);
  if (!(step > 0) || mag >= 1e7 || step < 1e-6) {
    return detail::to_chars(v, std::chars_format::general, 6);
  }
  const int decimals = std::max(0, -static_cast<int>(std::floor(std::log10(step) + 1e-9)));
  return detail::to_chars(v, std::chars_format::fixed, decimals);
}

// Where the plot area lies and how data maps onto it (pixels, origin top-left).
struct Layout {
  double left = 0, top = 0, width = 0, height = 0;  // plot area
  Scale x, y;
  double x_step = 0, y_step = 0;
  std::vector<double> x_ticks, y_ticks;
  bool legend = false;
  double legend_left = 0;  // legend column (in the reserved right margin)
};

namespace detail {

inline constexpr double kTitlePx = 15, kLabelPx = 12.5, kTickPx = 11, kLegendPx = 11.5, kPointPx = 10;

inline std::size_t named_series(const Chart& c) {
  return static_cast<std::size_t>(std::count_if(c.series.begin(), c.series.end(),
                                                [](const Series& s) { return !s.name.empty(); }));
}

// Axis ends: the finite data (both axes' data with the diagonal) padded by 5% (or around a flat value),
// with fixed ends taking precedence.
inline std::pair<double, double> axis_range(const Chart& c, bool is_x) {
  double lo = INFINITY, hi = -INFINITY;
  for (const Series& s : c.series) {
    for (const Point& p : s.points) {
      if (!finite(p)) continue;
      if (is_x || c.diagonal) lo = std::min(lo, p.x), hi = std::max(hi, p.x);
      if (!is_x || c.diagonal) lo = std::min(lo, p.y), hi = std::max(hi, p.y);
    }
  }
  if (lo > hi) lo = 0, hi = 1;  // no data
  if (hi - lo <= 1e-12 * std::max(std::abs(lo), std::abs(hi))) {
    const double pad = lo != 0 ? std::abs(lo) * 0.1 : 1;
    lo -= pad, hi += pad;
  } else {
    const double pad = (hi - lo) * 0.05;
    lo -= pad, hi += pad;
  }
  const std::optional<double>& fmin = is_x ? c.x_min : c.y_min;
  const std::optional<double>& fmax = is_x ? c.x_max : c.y_max;
  if (fmin && std::isfinite(*fmin)) lo = *fmin;
  if (fmax && std::isfinite(*fmax)) hi = *fmax;
  if (lo > hi) std::swap(lo, hi);
  if (hi - lo <= 1e-12 * std::max(std::abs(lo), std::abs(hi))) {
    const double pad = lo != 0 ? std::abs(lo) * 0.1 : 1;
    lo -= pad, hi += pad;
  }
  return {lo, hi};
}

inline double widest_label(const std::vector<double>& ticks, double step) {
  double w = 0;
  for (const double t : ticks) w = std::max(w, text_width(format_tick(t, step), kTickPx));
  return w;
}

}  // namespace detail

inline Layout layout(const Chart& c, int width, int height) {
  using namespace detail;
  const double W = std::max(width, 160), H = std::max(height, 120);
  Layout L;
  const auto [x0, x1] = axis_range(c, true);
  const auto [y0, y1] = axis_range(c, false);

  L.top = c.title.empty() ? 14 : 40;
  const double bottom = 30 + (c.x_label.empty() ? 0 : 20);
  L.height = std::max(H - L.top - bottom, 20.0);
  L.y_step = nice_step(y0, y1, std::clamp(static_cast<int>(std::lround(L.height / 55)), 3, 7));
  L.y_ticks = ticks_with_step(y0, y1, L.y_step);

  L.left = 10 + (c.y_label.empty() ? 0 : 20) + widest_label(L.y_ticks, L.y_step) + 9;
  double right = 18;
  L.legend = named_series(c) > 1;
  if (L.legend) {
    double names = 0;
    for (const Series& s : c.series) names = std::max(names, text_width(s.name, kLegendPx));
    right = std::min(16 + 30 + names + 10, 0.34 * W);
  }
  L.width = std::max(W - L.left - right, 20.0);
  L.legend_left = L.left + L.width + 16;

  // x ticks: about one per 60 px, fewer while the labels would crowd.
  for (int target = std::clamp(static_cast<int>(std::lround(L.width / 60)), 3, 7);; --target) {
    L.x_step = nice_step(x0, x1, target);
    L.x_ticks = ticks_with_step(x0, x1, L.x_step);
    const double spacing = L.x_step > 0 ? L.x_step / (x1 - x0) * L.width : L.width;
    if (target <= 2 || spacing >= widest_label(L.x_ticks, L.x_step) + 12) break;
  }
  // The last x label is centred on its tick: keep it inside the canvas and clear of the legend.
  if (!L.x_ticks.empty()) {
    const double need = widest_label({L.x_ticks.back()}, L.x_step) / 2 + 4;
    const double over = need - ((L.legend ? 10 : right) + (x1 - L.x_ticks.back()) / (x1 - x0) * L.width);
    if (over > 0) L.width = std::max(L.width - over, 20.0);
  }
  L.x = Scale{x0, x1, L.left, L.left + L.width};
  L.y = Scale{y0, y1, L.top + L.height, L.top};
  return L;
}

namespace detail {

struct Box {
  double x0, y0, x1, y1;
  bool overlaps(const Box& o) const { return x0 < o.x1 && o.x0 < x1 && y0 < o.y1 && o.y0 < y1; }
  double overlap(const Box& o) const {
    const double w = std::min(x1, o.x1) - std::max(x0, o.x0), h = std::min(y1, o.y1) - std::max(y0, o.y0);
    return w > 0 && h > 0 ? w * h : 0;
  }
};

inline void text(std::string& out, double x, double y, std::string_view s, double px, const char* anchor,
                 std::string_view extra = {}) {
  out += "<text x=\"" + num(x) + "\" y=\"" + num(y) + "\" font-size=\"" + num(px) + "\"";
  if (std::string_view(anchor) != "start") out += std::string(" text-anchor=\"") + anchor + "\"";
  if (!extra.empty()) out += " " + std::string(extra);
  out += ">" + escape(s) + "</text>\n";
}

// Marker shapes cycle with the colours (circle, square, diamond, triangle) so series differ without colour.
inline void marker(std::string& out, int shape, double x, double y, const char* fill, bool outline) {
  const std::string stroke = outline ? " stroke=\"#FFFFFF\" stroke-width=\"1\"" : "";
  switch (shape % 4) {
    case 0:
      out += "<circle cx=\"" + num(x) + "\" cy=\"" + num(y) + "\" r=\"" + (outline ? "4" : "3.3") + "\" fill=\"" +
             fill + "\"" + stroke + "/>\n";
      break;
    case 1:
      out += "<rect x=\"" + num(x - 3.6) + "\" y=\"" + num(y - 3.6) + "\" width=\"7.2\" height=\"7.2\" fill=\"" +
             fill + "\"" + stroke + "/>\n";
      break;
    case 2:
      out += "<path d=\"M" + num(x) + " " + num(y - 5) + "L" + num(x + 5) + " " + num(y) + "L" + num(x) + " " +
             num(y + 5) + "L" + num(x - 5) + " " + num(y) + "Z\" fill=\"" + fill + "\"" + stroke + "/>\n";
      break;
    default:
      out += "<path d=\"M" + num(x) + " " + num(y - 5) + "L" + num(x + 4.6) + " " + num(y + 3.4) + "L" +
             num(x - 4.6) + " " + num(y + 3.4) + "Z\" fill=\"" + fill + "\"" + stroke + "/>\n";
  }
}

// Pixel polylines through the finite points (a NaN/inf point breaks the line); a staircase with step.
inline std::vector<std::vector<std::pair<double, double>>> polylines(const Series& s, const Layout& L) {
  std::vector<Point> pts = s.points;
  if (s.step) {
    pts.erase(std::remove_if(pts.begin(), pts.end(), [](const Point& p) { return !finite(p); }), pts.end());
    std::stable_sort(pts.begin(), pts.end(), [](const Point& a, const Point& b) { return a.x < b.x; });
  }
  std::vector<std::vector<std::pair<double, double>>> out;
  bool open = false;
  for (const Point& p : pts) {
    if (!finite(p)) {
      open = false;
      continue;
    }
    const double px = L.x(p.x), py = L.y(p.y);
    if (!open) out.emplace_back();
    if (open && s.step) out.back().emplace_back(px, out.back().back().second);
    out.back().emplace_back(px, py);
    open = true;
  }
  return out;
}

// Whether the segment a-b crosses box r (Liang-Barsky clipping).
inline bool crosses(std::pair<double, double> a, std::pair<double, double> b, const Box& r) {
  double t0 = 0, t1 = 1;
  const double dx = b.first - a.first, dy = b.second - a.second;
  const double p[] = {-dx, dx, -dy, dy};
  const double q[] = {a.first - r.x0, r.x1 - a.first, a.second - r.y0, r.y1 - a.second};
  for (int i = 0; i < 4; ++i) {
    if (p[i] == 0) {
      if (q[i] < 0) return false;
    } else {
      const double t = q[i] / p[i];
      if (p[i] < 0) t0 = std::max(t0, t);
      else t1 = std::min(t1, t);
      if (t0 > t1) return false;
    }
  }
  return true;
}

inline bool inside(const Layout& L, double px, double py) {
  return px >= L.left - 0.5 && px <= L.left + L.width + 0.5 && py >= L.top - 0.5 && py <= L.top + L.height + 0.5;
}

// The chart's elements for a width x height canvas at the origin; ids are prefixed with `id`.
inline std::string body(const Chart& c, int width, int height, const std::string& id) {
  const double W = std::max(width, 160), H = std::max(height, 120);
  const Layout L = layout(c, width, height);
  const double right = L.left + L.width, bottom = L.top + L.height;
  std::string out;
  out += "<rect width=\"" + num(W) + "\" height=\"" + num(H) + "\" fill=\"#FFFFFF\"/>\n";
  out += "<defs><clipPath id=\"" + id + "-plot\"><rect x=\"" + num(L.left) + "\" y=\"" + num(L.top) +
         "\" width=\"" + num(L.width) + "\" height=\"" + num(L.height) + "\"/></clipPath></defs>\n";

  // Grid, axes and ticks.
  std::string grid, ticks;
  for (const double t : L.x_ticks) {
    const double px = L.x(t);
    grid += "M" + num(px) + " " + num(L.top) + "V" + num(bottom);
    ticks += "M" + num(px) + " " + num(bottom) + "v5";
  }
  for (const double t : L.y_ticks) {
    const double py = L.y(t);
    grid += "M" + num(L.left) + " " + num(py) + "H" + num(right);
    ticks += "M" + num(L.left) + " " + num(py) + "h-5";
  }
  if (!grid.empty()) out += "<path d=\"" + grid + "\" stroke=\"#E6E6E6\" stroke-width=\"1\" fill=\"none\"/>\n";
  out += "<rect x=\"" + num(L.left) + "\" y=\"" + num(L.top) + "\" width=\"" + num(L.width) + "\" height=\"" +
         num(L.height) + "\" fill=\"none\" stroke=\"#B4B4B4\" stroke-width=\"1\"/>\n";
  if (!ticks.empty()) out += "<path d=\"" + ticks + "\" stroke=\"#555555\" stroke-width=\"1\" fill=\"none\"/>\n";
  out += "<g fill=\"#333333\">\n";
  for (const double t : L.x_ticks) {
    text(out, L.x(t), bottom + 8 + kTickPx, format_tick(t, L.x_step), kTickPx, "middle");
  }
  for (const double t : L.y_ticks) {
    text(out, L.left - 8, L.y(t) + kTickPx * 0.35, format_tick(t, L.y_step), kTickPx, "end");
  }
  out += "</g>\n";

  // Title and axis labels.
  out += "<g fill=\"#222222\">\n";
  if (!c.title.empty()) {
    const std::string t = fit(c.title, W - 16, kTitlePx);
    const double half = text_width(t, kTitlePx) / 2;
    text(out, std::clamp(L.left + L.width / 2, 8 + half, std::max(8 + half, W - 8 - half)), 25, t, kTitlePx,
         "middle", "font-weight=\"bold\"");
  }
  if (!c.x_label.empty()) {
    const std::string t = fit(c.x_label, W - 16, kLabelPx);
    const double half = text_width(t, kLabelPx) / 2;
    text(out, std::clamp(L.left + L.width / 2, 8 + half, std::max(8 + half, W - 8 - half)), H - 11, t, kLabelPx,
         "middle");
  }
  if (!c.y_label.empty()) {
    const double cx = 10 + kLabelPx * 0.8, cy = L.top + L.height / 2;
    text(out, cx, cy, fit(c.y_label, L.height + 20, kLabelPx), kLabelPx, "middle",
         "transform=\"rotate(-90 " + num(cx) + " " + num(cy) + ")\"");
  }
  out += "</g>\n";

  // Plot contents, clipped to the plot area.
  std::vector<Box> markers, placed;  // for point labels: markers; the diagonal key and placed labels
  std::vector<std::pair<std::pair<double, double>, std::pair<double, double>>> segments;  // and lines
  out += "<g clip-path=\"url(#" + id + "-plot)\">\n";
  if (c.diagonal) {
    const double a = std::min(L.x.d0, L.x.d1) - std::abs(L.x.d1 - L.x.d0), b = std::max(L.x.d0, L.x.d1) +
                                                                                std::abs(L.x.d1 - L.x.d0);
    if (c.band > 0 && std::isfinite(c.band)) {
      out += "<path d=\"M" + num(L.x(a)) + " " + num(L.y(a * (1 - c.band))) + "L" + num(L.x(b)) + " " +
             num(L.y(b * (1 - c.band))) + "L" + num(L.x(b)) + " " + num(L.y(b * (1 + c.band))) + "L" +
             num(L.x(a)) + " " + num(L.y(a * (1 + c.band))) + "Z\" fill=\"#000000\" fill-opacity=\"0.07\"/>\n";
    }
    out += "<path d=\"M" + num(L.x(a)) + " " + num(L.y(a)) + "L" + num(L.x(b)) + " " + num(L.y(b)) +
           "\" stroke=\"#666666\" stroke-width=\"1.2\" stroke-dasharray=\"5 4\" fill=\"none\"/>\n";
  }
  // Grey (dominated) series underneath, highlighted ones on top in their given order.
  std::vector<std::size_t> order;
  std::vector<int> slot(c.series.size(), -1);  // palette / shape index of each highlighted series
  int next = 0;
  for (std::size_t i = 0; i < c.series.size(); ++i) {
    if (!c.series[i].highlight) order.push_back(i);
  }
  for (std::size_t i = 0; i < c.series.size(); ++i) {
    if (c.series[i].highlight) order.push_back(i), slot[i] = next++;
  }
  for (const std::size_t i : order) {
    const Series& s = c.series[i];
    const char* col = slot[i] >= 0 ? color(static_cast<std::size_t>(slot[i])) : kGrey;
    if (s.line) {
      std::string d;
      for (const auto& pl : polylines(s, L)) {
        for (std::size_t j = 0; j < pl.size(); ++j) {
          d += (j == 0 ? "M" : "L") + num(pl[j].first) + " " + num(pl[j].second);
          if (j > 0) segments.emplace_back(pl[j - 1], pl[j]);
        }
      }
      if (!d.empty()) {
        out += "<path d=\"" + d + "\" stroke=\"" + col + "\" stroke-width=\"" + (slot[i] >= 0 ? "2" : "1.2") +
               "\" fill=\"none\" stroke-linejoin=\"round\"/>\n";
      }
    }
    for (const Point& p : s.points) {
      if (!finite(p)) continue;
      const double px = L.x(p.x), py = L.y(p.y);
      if (s.markers) marker(out, slot[i] >= 0 ? slot[i] : 0, px, py, col, slot[i] >= 0);
      if (s.markers && inside(L, px, py)) markers.push_back({px - 5, py - 5, px + 5, py + 5});
    }
  }
  out += "</g>\n";

  // The diagonal's key, top-left inside the plot (away from data that lies near y = x), on a white backdrop.
  if (c.diagonal) {
    const double kx = L.left + 10, ky = L.top + 16;
    const bool band = c.band > 0 && std::isfinite(c.band);
    const std::string pct = band ? "\u00B1" + to_chars(c.band * 100, std::chars_format::general, 3) + "%" : "";
    const double bx = kx + 26 + text_width("y = x", kTickPx) + 14;
    const double end = band ? bx + 26 + text_width(pct, kTickPx) : bx - 14;
    const Box key{kx - 5, ky - 13, end + 5, ky + 5};
    out += "<rect x=\"" + num(key.x0) + "\" y=\"" + num(key.y0) + "\" width=\"" + num(key.x1 - key.x0) +
           "\" height=\"" + num(key.y1 - key.y0) + "\" fill=\"#FFFFFF\" fill-opacity=\"0.85\"/>\n";
    out += "<g fill=\"#444444\">\n<path d=\"M" + num(kx) + " " + num(ky - 4) + "h20\" stroke=\"#666666\" "
           "stroke-width=\"1.2\" stroke-dasharray=\"5 4\"/>\n";
    text(out, kx + 26, ky, "y = x", kTickPx, "start");
    if (band) {
      out += "<rect x=\"" + num(bx) + "\" y=\"" + num(ky - 9) + "\" width=\"20\" height=\"10\" fill=\"#000000\" "
             "fill-opacity=\"0.07\"/>\n";
      text(out, bx + 26, ky, pct, kTickPx, "start");
    }
    out += "</g>\n";
    placed.push_back(key);
  }

  // No finite point at all: say so in the middle.
  const bool any = std::any_of(c.series.begin(), c.series.end(), [](const Series& s) {
    return std::any_of(s.points.begin(), s.points.end(), finite);
  });
  if (!any) text(out, L.left + L.width / 2, L.top + L.height / 2, "no data", kLabelPx, "middle", "fill=\"#999999\"");

  // Point labels: each at the least crowded of twenty spots around its point, inside the plot area (cost:
  // overlap with other labels, markers covered, lines crossed); greedy, then a few passes that move each
  // label given all the others. Drawn over a white halo.
  struct Spot { double dx, dy; int anchor; double penalty; };  // baseline offset; anchor -1 end, 0 middle, 1 start
  static constexpr Spot spots[] = {  // the outer ring only when the inner one is crowded
      {7, 3.5, 1, 0},      {-7, 3.5, -1, 0},   {5, -6, 1, 0},      {5, 12, 1, 0},       {-5, -6, -1, 0},
      {-5, 12, -1, 0},     {0, -8, 0, 0},      {0, 16, 0, 0},      {8, -11, 1, 0},      {8, 18, 1, 0},
      {-8, -11, -1, 0},    {-8, 18, -1, 0},    {0, -19, 0, 150},   {0, 27, 0, 150},     {16, 3.5, 1, 150},
      {-16, 3.5, -1, 150}, {10, -20, 1, 150},  {10, 28, 1, 150},   {-10, -20, -1, 150}, {-10, 28, -1, 150}};
  struct Label { double px, py, tw; std::string s; std::size_t spot; Box box; };
  std::vector<Label> labels;
  for (const std::size_t i : order) {
    for (const Point& p : c.series[i].points) {
      if (!finite(p) || p.label.empty() || !inside(L, L.x(p.x), L.y(p.y))) continue;
      std::string s = fit(p.label, L.width / 2, kPointPx);
      const double tw = text_width(s, kPointPx);
      labels.push_back({L.x(p.x), L.y(p.y), tw, std::move(s), 0, Box{0, 0, 0, 0}});
    }
  }
  const auto spot_box = [&](const Label& l, const Spot& sp) {
    const double ax = l.px + sp.dx, x0 = sp.anchor > 0 ? ax : sp.anchor < 0 ? ax - l.tw : ax - l.tw / 2;
    return Box{x0 - 1.5, l.py + sp.dy - kPointPx * 0.78 - 1.5, x0 + l.tw + 1.5, l.py + sp.dy + kPointPx * 0.22 + 1.5};
  };
  const auto place = [&](std::size_t k, std::size_t placed_labels) {  // labels[0, placed_labels) are placed
    double best_cost = INFINITY;
    for (std::size_t j = 0; j < std::size(spots); ++j) {
      const Box b = spot_box(labels[k], spots[j]);
      double cost = spots[j].penalty;
      for (std::size_t o = 0; o < placed_labels; ++o) cost += o == k ? 0 : 10 * b.overlap(labels[o].box);
      for (const Box& o : placed) cost += 10 * b.overlap(o);
      for (const Box& o : markers) cost += b.overlaps(o) ? 400 + b.overlap(o) : 0;  // hiding a point is worst
      for (const auto& [p0, p1] : segments) cost += crosses(p0, p1, b) ? 150 : 0;  // readable over its halo
      if (b.x0 < L.left + 1 || b.x1 > right - 1 || b.y0 < L.top + 1 || b.y1 > bottom - 1) cost += 1e6;
      if (cost < best_cost) best_cost = cost, labels[k].spot = j, labels[k].box = b;
      if (cost == 0) break;
    }
  };
  for (std::size_t k = 0; k < labels.size(); ++k) place(k, k);
  for (int pass = 0; pass < (labels.size() <= 200 ? 3 : 0); ++pass) {
    for (std::size_t k = 0; k < labels.size(); ++k) place(k, labels.size());
  }
  std::string label_text;
  for (const Label& l : labels) {
    const Spot& sp = spots[l.spot];
    const char* anchor = sp.anchor > 0 ? "start" : sp.anchor < 0 ? "end" : "middle";
    text(label_text, l.px + sp.dx, l.py + sp.dy, l.s, kPointPx, anchor);
  }
  if (!label_text.empty()) {
    out += "<g fill=\"none\" stroke=\"#FFFFFF\" stroke-width=\"3\" stroke-linejoin=\"round\">\n";
    out += label_text + "</g>\n";
    out += "<g fill=\"#333333\">\n" + label_text + "</g>\n";
  }

  // Legend in the reserved right margin.
  if (L.legend) {
    const double lx = L.legend_left, max_name = W - lx - 8 - 30;
    double ly = L.top + 8;
    out += "<g class=\"legend\" fill=\"#222222\">\n";
    for (std::size_t i = 0; i < c.series.size() && ly + 6 < H; ++i) {
      const Series& s = c.series[i];
      if (s.name.empty()) continue;
      const char* col = slot[i] >= 0 ? color(static_cast<std::size_t>(slot[i])) : kGrey;
      if (s.line) {
        out += "<path d=\"M" + num(lx) + " " + num(ly) + "h22\" stroke=\"" + col + "\" stroke-width=\"" +
               (slot[i] >= 0 ? "2" : "1.2") + "\"/>\n";
      }
      if (s.markers || !s.line) marker(out, slot[i] >= 0 ? slot[i] : 0, lx + 11, ly, col, slot[i] >= 0);
      text(out, lx + 30, ly + kLegendPx * 0.35, fit(s.name, max_name, kLegendPx), kLegendPx, "start");
      ly += 20;
    }
    out += "</g>\n";
  }
  return out;
}

inline std::string open_svg(double w, double h, std::string_view title) {
  std::string out = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + num(w) + "\" height=\"" + num(h) +
                    "\" viewBox=\"0 0 " + num(w) + " " + num(h) + "\" font-family=\"" + kFont + "\">\n";
  if (!title.empty()) out += "<title>" + escape(title) + "</title>\n";
  return out;
}

}  // namespace detail

// One chart as a standalone SVG document.
inline std::string render(const Chart& chart, int width = 560, int height = 400) {
  const int w = std::max(width, 160), h = std::max(height, 120);
  return detail::open_svg(w, h, chart.title) + detail::body(chart, w, h, "c0") + "</svg>\n";
}

// Several charts in one SVG, row by row, `columns` per row, each panel_width x panel_height.
inline std::string render_panels(const std::vector<Chart>& charts, int columns = 2, int panel_width = 560,
                                 int panel_height = 400) {
  const int pw = std::max(panel_width, 160), ph = std::max(panel_height, 120);
  const int n = static_cast<int>(charts.size());
  const int cols = std::clamp(columns, 1, std::max(n, 1)), rows = std::max((n + cols - 1) / cols, 1);
  std::string out = detail::open_svg(static_cast<double>(cols) * pw, static_cast<double>(rows) * ph, "");
  out += "<rect width=\"" + detail::num(cols * pw) + "\" height=\"" + detail::num(rows * ph) +
         "\" fill=\"#FFFFFF\"/>\n";
  for (int i = 0; i < n; ++i) {
    out += "<g transform=\"translate(" + std::to_string(i % cols * pw) + " " + std::to_string(i / cols * ph) +
           ")\">\n";
    out += detail::body(charts[static_cast<std::size_t>(i)], pw, ph, "c" + std::to_string(i));
    out += "</g>\n";
  }
  return out + "</svg>\n";
}

}  // namespace edgespec::cli::svg
