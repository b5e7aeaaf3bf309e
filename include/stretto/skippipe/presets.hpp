#pragma once
/**
@file
@brief Generators of the three settings SkipPipe is evaluated on (SkipPipe, Blagoev, Ersoy and
Chen, arXiv 2502.19913, §6: "single cluster", "5 clusters", "geo-distributed"), in the paper's
default configuration: 20 nodes, 6 stages of 5, 3, 3, 3, 3, 3 nodes, 6 microbatches per stage-0
node, memory 3, path length 4 of 6 (docs/skippipe.md, "presets").

The network comes from a model of ours, not from the paper's measurements: nodes sit in cloud
regions (approximate coordinates); the one-way latency between two regions is
2 ms + great-circle distance / (140 km/ms), and the bandwidth is window-limited,
1.2 GiB·ms / latency (at most 2 GiB/s; inside a region 1 ms and 2 GiB/s); every message also
pays 0.3 s of host-side copies. A node's forward of one microbatch (4 LLaMA layers, dim 1024,
8 samples of 1024 tokens) takes 1.76 s. The seed draws which region each node sits in (round
robin over a shuffled node order) and ±10 % per-node speed and ±15 % per-link bandwidth
variation. Stages are assigned by `assign_stages`.
*/

#include <cmath>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "../core/errors.hpp"
#include "planner.hpp"
#include "setting.hpp"

namespace stretto::skippipe {

/** @brief The preset names, in the order `stretto-plan skippipe` lists them. */
inline const std::vector<std::string>& preset_names() {
  static const std::vector<std::string> names{"single-cluster", "5-clusters", "geo-distributed"};
  return names;
}

/**
@brief The setting `name` (one of `preset_names()`) drawn with `seed`.
@throws stretto::argument_error for an unknown name, listing the valid ones.
*/
inline setting make_preset(std::string_view name, std::uint64_t seed) {
  struct region {
    const char* name;
    double lat, lon;
  };
  static const region all[] = {{"oregon", 45.6, -121.2},    {"iowa", 41.3, -95.9},      {"los-angeles", 34.1, -118.2},
                               {"montreal", 45.5, -73.6},   {"london", 51.5, -0.1},     {"belgium", 50.5, 4.5},
                               {"netherlands", 53.4, 6.8},  {"frankfurt", 50.1, 8.7},   {"tokyo", 35.7, 139.7},
                               {"taiwan", 24.1, 120.7},     {"singapore", 1.35, 103.8}, {"sydney", -33.9, 151.2}};
  std::vector<region> regions;
  if (name == "single-cluster") {
    regions = {all[7]};
  } else if (name == "5-clusters") {
    regions = {all[2], all[6], all[7], all[10], all[0]};
  } else if (name == "geo-distributed") {
    regions.assign(std::begin(all), std::end(all));
  } else {
    throw argument_error("unknown skippipe preset '" + std::string(name) +
                         "'; valid presets: single-cluster, 5-clusters, geo-distributed");
  }
  constexpr std::int32_t nodes = 20;
  constexpr double gib = 1024.0 * 1024.0 * 1024.0;
  constexpr double host_copies = 0.3;
  detail::splitmix rng{seed * 0x2545F4914F6CDD1DULL + 17};
  std::vector<std::int32_t> order(nodes);
  for (std::int32_t k = 0; k < nodes; ++k) order[static_cast<std::size_t>(k)] = k;
  for (std::int32_t k = nodes; k > 1; --k) std::swap(order[static_cast<std::size_t>(k - 1)], order[static_cast<std::size_t>(rng.below(k))]);
  std::vector<std::size_t> where(nodes);
  for (std::int32_t k = 0; k < nodes; ++k)
    where[static_cast<std::size_t>(order[static_cast<std::size_t>(k)])] = static_cast<std::size_t>(k) % regions.size();

  setting s;
  s.activation_bytes = 8.0 * 1024 * 1024 * 4;  // 8 samples × 1024 tokens × dim 1024 × 4 bytes
  s.compute.resize(nodes);
  s.latency.assign(nodes, std::vector<double>(nodes, 0.0));
  s.bandwidth.assign(nodes, std::vector<double>(nodes, 0.0));
  for (std::int32_t a = 0; a < nodes; ++a) {
    s.compute[static_cast<std::size_t>(a)] = 1.76 * (0.9 + 0.2 * rng.unit());
    s.names.push_back(std::string(regions[where[static_cast<std::size_t>(a)]].name) + "-" + std::to_string(a));
  }
  constexpr double pi = 3.14159265358979323846;
  for (std::int32_t a = 0; a < nodes; ++a)
    for (std::int32_t b = a + 1; b < nodes; ++b) {
      const region& x = regions[where[static_cast<std::size_t>(a)]];
      const region& y = regions[where[static_cast<std::size_t>(b)]];
      double ms = 1.0, rate = 2.0 * gib;
      if (&x != &y) {
        const double r = pi / 180.0;
        const double c = std::sin(x.lat * r) * std::sin(y.lat * r) +
                         std::cos(x.lat * r) * std::cos(y.lat * r) * std::cos((x.lon - y.lon) * r);
        const double km = 6371.0 * std::acos(std::max(-1.0, std::min(1.0, c)));
        ms = 2.0 + km / 140.0;
        rate = std::min(2.0, 1.2 / ms) * gib;
      }
      rate *= 0.85 + 0.3 * rng.unit();
      const auto ua = static_cast<std::size_t>(a), ub = static_cast<std::size_t>(b);
      s.latency[ua][ub] = s.latency[ub][ua] = ms / 1000.0 + host_copies;
      s.bandwidth[ua][ub] = s.bandwidth[ub][ua] = rate;
    }
  s.memory = 3;
  s.path_length = 4;
  s.microbatches = 6;
  s.stages = assign_stages(s, {5, 3, 3, 3, 3, 3});
  s.check();
  return s;
}

}  // namespace stretto::skippipe
