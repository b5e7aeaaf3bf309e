// The communicator's flags shared by the MPI benchmarks (--progress, --wait): the option's text
// to its `stretto::mpi` value. Each returns false, leaving `out` as it was, for any other text.
#pragma once

#include <string_view>

#include <stretto/mpi/communicator.hpp>

namespace stretto::bench {

/// "auto", "thread" or "poll" (`--progress`).
inline bool parse_progress(std::string_view text, stretto::mpi::progress_mode& out) {
  using stretto::mpi::progress_mode;
  if (text == "auto") out = progress_mode::automatic;
  else if (text == "thread") out = progress_mode::thread;
  else if (text == "poll") out = progress_mode::poll;
  else return false;
  return true;
}

/// "auto", "spin" or "block" (`--wait`).
inline bool parse_wait(std::string_view text, stretto::mpi::wait_style& out) {
  using stretto::mpi::wait_style;
  if (text == "auto") out = wait_style::automatic;
  else if (text == "spin") out = wait_style::spin;
  else if (text == "block") out = wait_style::block;
  else return false;
  return true;
}

}  // namespace stretto::bench
