#pragma once
/**
@file
@brief Kokkos initialised with one device per rank: each rank of a node takes device
(local rank mod the node's devices), so that p ranks on a node with p GPUs use one each and p
ranks on one GPU share it.
*/

#include <mpi.h>

#include <Kokkos_Core.hpp>

#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <stretto/kokkos/execution_instance.hpp>
#include <stretto/mpi/node.hpp>

namespace stretto::training {

/**
@brief `Kokkos::ScopeGuard` that picks this rank's device: `Kokkos::initialize` on entry (with
`argc`, `argv` and, on a GPU backend, `--kokkos-device-id=` local rank mod the node's device
count), `Kokkos::finalize` on exit.

The local rank is `mpi::local_rank(comm)` (the launcher's variable, else a shared-memory split
of `comm`); the device count is `kokkos::device_traits<Kokkos::DefaultExecutionSpace>::device_count()`
(0 on a host backend: then nothing is added). A choice made by the user wins: nothing is added
when `argv` has a `--kokkos-device…`, `--kokkos-ndevices` or `--kokkos-num-devices` option or
`KOKKOS_DEVICE_ID` or `KOKKOS_NUM_DEVICES` is set. Kokkos reads a copy of the arguments (the
caller's `argv` is left as it is).

Usage, in place of `Kokkos::ScopeGuard kokkos(argc, argv);` after `MPI_Init`:
`stretto::training::device_scope kokkos(argc, argv, MPI_COMM_WORLD);`
@pre MPI is initialised; every rank of `comm` constructs one (the local rank may be a collective).
*/
class device_scope {
 public:
  device_scope(int argc, char** argv, MPI_Comm comm = MPI_COMM_WORLD) {
    bool chosen = std::getenv("KOKKOS_DEVICE_ID") != nullptr || std::getenv("KOKKOS_NUM_DEVICES") != nullptr;
    for (int i = 0; i < argc; ++i) {
      args_.emplace_back(argv[i]);
      const std::string_view a = argv[i];
      chosen = chosen || a.starts_with("--kokkos-device") || a.starts_with("--kokkos-ndevices") ||
               a.starts_with("--kokkos-num-devices");
    }
    const int local = mpi::local_rank(comm);  // every rank calls it (a collective without the launcher's variable)
    const int devices = kokkos::device_traits<Kokkos::DefaultExecutionSpace>::device_count();
    if (devices > 0 && !chosen) {
      device_ = local % devices;
      args_.push_back("--kokkos-device-id=" + std::to_string(device_));
    }
    for (std::string& a : args_) pointers_.push_back(a.data());
    pointers_.push_back(nullptr);
    argc_ = static_cast<int>(args_.size());
    guard_.emplace(argc_, pointers_.data());
  }
  device_scope(const device_scope&) = delete;
  device_scope& operator=(const device_scope&) = delete;

  /** @brief The device this rank asked Kokkos for; -1 when it asked for none (a host backend, or the user's choice). */
  int device() const noexcept { return device_; }

 private:
  std::vector<std::string> args_;
  std::vector<char*> pointers_;
  int argc_{0};
  int device_{-1};
  std::optional<Kokkos::ScopeGuard> guard_;  // last: finalises first
};

}  // namespace stretto::training
