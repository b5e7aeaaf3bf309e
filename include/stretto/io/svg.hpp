#pragma once
/**
@file
@brief Timelines as SVG pictures drawn like the papers' figures: one row per rank, one box per op
coloured by kind (F blue, B green, W orange, fused BW purple), the microbatch number inside when
the box is wide enough, idle time as the grey row showing through, and a time axis.

A second chunk (looped or V-shaped placement; chunk ≥ 1) is drawn in a lighter tint of its kind's
colour, the way the Zero Bubble and Megatron figures tell chunks apart; a microbatch of the
second replica (bidirectional schedules) is hatched. An overlapped F&B pair (DualPipe) is one box
split horizontally: F on top, the backward below. Every op is exactly one `<rect class="op ...">`
(with `data-rank`, `data-stage`, `data-microbatch`), so a test or script can count and query them.
*/

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <ostream>
#include <span>
#include <cstdlib>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "../sim/timeline.hpp"
#include "chrome_trace.hpp"

namespace stretto::io {

/** @brief Layout of `write_svg`. Sizes in pixels. */
struct svg_options {
  std::string title;          ///< first line above the rows; empty: none
  double width{0.0};          ///< width of the time area; 0: chosen so the shortest op is ~22 px, within [600, 2400]
  double row_height{22.0};    ///< height of one rank's row
  double font_size{11.0};     ///< label size; a label is drawn only when its box is wide and tall enough
  std::string time_unit;      ///< the axis label's unit, e.g. "ms"; empty: "time"
  std::string row_label{"rank"};  ///< each row's label is this and the row's number ("node" for SkipPipe)
};

namespace detail {

/** @brief The fill of an op: by kind, lighter for chunks ≥ 1. */
inline std::string op_fill(op_kind kind, std::int32_t chunk) {
  // Base colours (kind) and their tints for the second chunk, mixed about 55% with white.
  switch (kind) {
    case op_kind::forward: return chunk == 0 ? "#3a78c9" : "#9fc0ea";
    case op_kind::backward_input: return chunk == 0 ? "#2f9e6e" : "#94d6b6";
    case op_kind::backward_weight: return chunk == 0 ? "#e0882b" : "#f3c898";
    case op_kind::backward: return chunk == 0 ? "#8057b8" : "#c6b0e2";
  }
  return "#999999";
}

/** @brief The class of an op's box: "op F", "op B", "op W" or "op BW". */
inline std::string op_class(op_kind kind) { return std::string("op ") + std::string(short_name(kind)); }

/** @brief A tick step of 1, 2 or 5 times a power of ten giving about `target` ticks over `span`. */
inline double tick_step(double span, double target) {
  if (!(span > 0.0)) return 1.0;
  const double raw = span / target;
  const double power = std::pow(10.0, std::floor(std::log10(raw)));
  for (const double k : {1.0, 2.0, 5.0, 10.0})
    if (k * power >= raw) return k * power;
  return 10.0 * power;
}

inline std::string svg_number(double value) {
  std::ostringstream text;
  text.setf(std::ios::fixed);
  text.precision(2);
  text << value;
  std::string out = text.str();
  while (out.back() == '0') out.pop_back();
  if (out.back() == '.') out.pop_back();
  return out == "-0" ? "0" : out;
}

inline std::string xml_escape(std::string_view text) {
  std::string out;
  for (const char c : text) {
    switch (c) {
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '&': out += "&amp;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

}  // namespace detail

/**
@brief Writes `events` as a standalone SVG document (see the file comment for what it shows).
The picture is `60 + width + 20` px wide (or as wide as the legend) and `(title ? 48 : 24) + p·row_height + 70` px high
(rows, axis, legend). `context` gives the shape, placement (chunks) and replicas.
*/
inline void write_svg(std::ostream& out, const sim::timeline& events, const trace_context& context, const svg_options& options = {}) {
  using detail::svg_number;
  const std::int32_t p = events.num_ranks();
  double begin = 0.0, end = 0.0, shortest = 0.0;
  bool any = false;
  for (std::int32_t r = 0; r < p; ++r)
    for (const sim::op_timing& t : events.ops(r)) {
      begin = any ? std::min(begin, t.start) : t.start;
      end = any ? std::max(end, t.end) : t.end;
      const double d = t.end - t.start;
      if (d > 0.0 && (shortest == 0.0 || d < shortest)) shortest = d;
      any = true;
    }
  const double span = end > begin ? end - begin : 1.0;
  double width = options.width;
  if (!(width > 0.0)) width = std::clamp(shortest > 0.0 ? 22.0 * span / shortest : 600.0, 600.0, 2400.0);
  const double left = 60.0, right = 20.0;
  const double top = options.title.empty() ? 24.0 : 48.0;
  const double row = options.row_height;
  const double rows_height = row * static_cast<double>(p);
  // The legend's entries, so that the picture is at least as wide as the legend.
  const double char_width = options.font_size * 0.62;
  std::vector<std::pair<std::string, std::string>> legend{
      {detail::op_fill(op_kind::forward, 0), "F forward"},
      {detail::op_fill(op_kind::backward_input, 0), "B input backward"},
      {detail::op_fill(op_kind::backward_weight, 0), "W weight backward"},
      {detail::op_fill(op_kind::backward, 0), "BW fused backward"}};
  if (context.shape.num_chunks > 1) legend.emplace_back(detail::op_fill(op_kind::forward, 1), "lighter: second chunk");
  bool replicas = false;
  for (const std::int32_t replica : context.replicas) replicas = replicas || replica > 0;
  if (replicas) legend.emplace_back("replica", "hatched: second replica");
  double legend_width = 0.0;
  for (const auto& entry : legend) legend_width += 26 + char_width * static_cast<double>(entry.second.size());
  const double total_width = std::ceil(std::max(left + width + right, left + legend_width + right));
  const double total_height = top + rows_height + 70.0;
  const double scale = width / span;
  const auto x_of = [&](double t) { return left + (t - begin) * scale; };

  out << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << svg_number(total_width) << "\" height=\"" << svg_number(total_height)
      << "\" viewBox=\"0 0 " << svg_number(total_width) << ' ' << svg_number(total_height)
      << "\" font-family=\"Helvetica, Arial, sans-serif\" font-size=\"" << svg_number(options.font_size) << "\">\n";
  out << "<defs><pattern id=\"replica\" width=\"6\" height=\"6\" patternUnits=\"userSpaceOnUse\" patternTransform=\"rotate(45)\">"
         "<rect width=\"2\" height=\"6\" fill=\"#ffffff\" fill-opacity=\"0.45\"/></pattern></defs>\n";
  out << "<rect width=\"100%\" height=\"100%\" fill=\"#ffffff\"/>\n";
  if (!options.title.empty())
    out << "<text x=\"" << svg_number(left) << "\" y=\"20\" font-size=\"" << svg_number(options.font_size + 3)
        << "\" font-weight=\"bold\">" << detail::xml_escape(options.title) << "</text>\n";

  // Rows: the grey background is the idle time that shows between boxes.
  for (std::int32_t r = 0; r < p; ++r) {
    const double y = top + row * r;
    out << "<rect class=\"idle\" x=\"" << svg_number(left) << "\" y=\"" << svg_number(y + 1) << "\" width=\"" << svg_number(width)
        << "\" height=\"" << svg_number(row - 2) << "\" fill=\"#e6e6e6\"/>\n";
    out << "<text x=\"" << svg_number(left - 6) << "\" y=\"" << svg_number(y + row / 2 + options.font_size * 0.35)
        << "\" text-anchor=\"end\">" << detail::xml_escape(options.row_label) << " " << r << "</text>\n";
  }

  // Time axis: ticks at 1, 2 or 5 × 10^k, about ten of them.
  const double step = detail::tick_step(span, 10.0);
  const double axis_y = top + rows_height + 4;
  out << "<g class=\"axis\" stroke=\"#555555\">\n<line x1=\"" << svg_number(left) << "\" y1=\"" << svg_number(axis_y) << "\" x2=\""
      << svg_number(left + width) << "\" y2=\"" << svg_number(axis_y) << "\"/>\n";
  std::string labels;
  for (double t = 0.0; t <= span * (1.0 + 1e-9); t += step) {
    const double x = left + t * scale;
    out << "<line x1=\"" << svg_number(x) << "\" y1=\"" << svg_number(axis_y) << "\" x2=\"" << svg_number(x) << "\" y2=\""
        << svg_number(axis_y + 4) << "\"/>\n";
    labels += "<text x=\"" + svg_number(x) + "\" y=\"" + svg_number(axis_y + 16) + "\" text-anchor=\"middle\">" +
              svg_number(begin + t) + "</text>\n";
  }
  out << "</g>\n<g class=\"axis-labels\" fill=\"#333333\">\n" << labels;
  out << "<text x=\"" << svg_number(left + width) << "\" y=\"" << svg_number(axis_y + 30) << "\" text-anchor=\"end\">"
      << (options.time_unit.empty() ? std::string("time") : "time (" + detail::xml_escape(options.time_unit) + ")") << "</text>\n</g>\n";

  // Ops.
  out << "<g class=\"ops\" stroke=\"#ffffff\" stroke-width=\"0.5\">\n";
  std::string texts;
  for (std::int32_t r = 0; r < p; ++r) {
    const auto list = events.ops(r);
    for (std::size_t i = 0; i < list.size(); ++i) {
      const sim::op_timing& t = list[i];
      const op& o = t.what;
      // An overlapped pair: the first op in the top half, its partner in the bottom half.
      const bool first_of_pair = o.overlapped && i + 1 < list.size();
      const bool second_of_pair = i > 0 && list[i - 1].what.overlapped;
      double y = top + row * r + 1, h = row - 2;
      if (first_of_pair) h /= 2;
      if (second_of_pair) {
        h /= 2;
        y += h;
      }
      const double x = x_of(t.start);
      const double w = std::max((t.end - t.start) * scale, 0.0);
      const std::int32_t chunk = detail::chunk_of(context.placement, context.shape, o.stage);
      const std::int32_t replica = context.replica_of(o.microbatch);
      out << "<rect class=\"" << detail::op_class(o.kind) << (chunk > 0 ? " chunk1" : "") << (replica > 0 ? " replica1" : "")
          << "\" data-rank=\"" << r << "\" data-stage=\"" << o.stage << "\" data-microbatch=\"" << o.microbatch << "\" x=\""
          << svg_number(x) << "\" y=\"" << svg_number(y) << "\" width=\"" << svg_number(w) << "\" height=\"" << svg_number(h)
          << "\" fill=\"" << detail::op_fill(o.kind, chunk) << "\"><title>" << short_name(o.kind) << " stage " << o.stage << ", mb "
          << o.microbatch << (replica > 0 ? ", replica 1" : "") << ": " << svg_number(t.start) << " to " << svg_number(t.end)
          << "</title></rect>\n";
      if (replica > 0)
        out << "<rect x=\"" << svg_number(x) << "\" y=\"" << svg_number(y) << "\" width=\"" << svg_number(w) << "\" height=\""
            << svg_number(h) << "\" fill=\"url(#replica)\" stroke=\"none\" pointer-events=\"none\"/>\n";
      const std::string label = std::to_string(o.microbatch);
      if (w >= char_width * static_cast<double>(label.size()) + 3 && h >= options.font_size * 0.8)
        texts += "<text x=\"" + svg_number(x + w / 2) + "\" y=\"" + svg_number(y + h / 2 + options.font_size * 0.35) +
                 "\" text-anchor=\"middle\"" + (chunk > 0 ? " fill=\"#1a1a1a\"" : "") + ">" + label + "</text>\n";
    }
  }
  out << "</g>\n<g class=\"labels\" fill=\"#ffffff\" font-weight=\"bold\" pointer-events=\"none\">\n" << texts << "</g>\n";

  // Legend.
  const double legend_y = axis_y + 40;
  double lx = left;
  out << "<g class=\"legend\">\n";
  for (const auto& [fill, text] : legend) {
    const bool hatched = fill == "replica";
    out << "<rect x=\"" << svg_number(lx) << "\" y=\"" << svg_number(legend_y - 10) << "\" width=\"14\" height=\"12\" fill=\""
        << (hatched ? detail::op_fill(op_kind::forward, 0) : fill) << "\"/>";
    if (hatched)
      out << "<rect x=\"" << svg_number(lx) << "\" y=\"" << svg_number(legend_y - 10) << "\" width=\"14\" height=\"12\" fill=\"url(#replica)\"/>";
    out << "<text x=\"" << svg_number(lx + 18) << "\" y=\"" << svg_number(legend_y) << "\">" << text << "</text>\n";
    lx += 26 + char_width * static_cast<double>(text.size());
  }
  out << "</g>\n</svg>\n";
}

/** @brief `write_svg` into a string. */
inline std::string to_svg(const sim::timeline& events, const trace_context& context, const svg_options& options = {}) {
  std::ostringstream out;
  write_svg(out, events, context, options);
  return out.str();
}

/**
@brief Writes the SVG documents `pictures` (each as `to_svg` makes them) one above the other in
one SVG document, e.g. a measured step above its simulation. Each keeps its own size; the
result is as wide as the widest and as tall as all of them together.
*/
inline void write_svg_stack(std::ostream& out, std::span<const std::string> pictures) {
  // The root element's width and height attributes of one picture (0 when absent).
  const auto attribute = [](const std::string& svg, std::string_view name) {
    const std::size_t root = svg.find("<svg");
    const std::size_t at = svg.find(std::string(" ") + std::string(name) + "=\"", root);
    if (root == std::string::npos || at == std::string::npos) return 0.0;
    return std::strtod(svg.c_str() + at + name.size() + 3, nullptr);
  };
  double width = 0.0, height = 0.0;
  for (const std::string& svg : pictures) {
    width = std::max(width, attribute(svg, "width"));
    height += attribute(svg, "height");
  }
  out << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << detail::svg_number(width) << "\" height=\""
      << detail::svg_number(height) << "\">\n";
  double y = 0.0;
  for (const std::string& svg : pictures) {
    const std::size_t root = svg.find("<svg");
    if (root == std::string::npos) continue;
    // The picture as a nested <svg> placed at y (a nested root takes x and y).
    out << "<svg y=\"" << detail::svg_number(y) << "\"" << svg.substr(root + 4);
    if (!svg.empty() && svg.back() != '\n') out << '\n';
    y += attribute(svg, "height");
  }
  out << "</svg>\n";
}

}  // namespace stretto::io
