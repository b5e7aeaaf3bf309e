#pragma once
/**
@file
@brief What a rank knows about its node: its local rank (to pick a device) and whether the MPI
library can read device memory (to hand it device buffers directly).
*/

#include <mpi.h>
#if __has_include(<mpi-ext.h>)
#include <mpi-ext.h>  // Open MPI's extensions: MPIX_Query_cuda_support, MPIX_Query_rocm_support
#endif

#include <cerrno>
#include <cstdlib>
#include <string_view>

namespace stretto::mpi {

namespace detail {
// The integer value of environment variable `name`, or -1 when unset or not a number ≥ 0.
inline int env_index(const char* name) {
  const char* text = std::getenv(name);
  if (text == nullptr || *text == '\0') return -1;
  char* end = nullptr;
  errno = 0;
  const long value = std::strtol(text, &end, 10);
  if (errno != 0 || *end != '\0' || value < 0 || value > 1 << 20) return -1;
  return static_cast<int>(value);
}
}  // namespace detail

/**
@brief This process's rank among the ranks of `comm` on the same node (0 … ranks per node − 1).

Read from the launcher's environment when it sets one (Open MPI's `OMPI_COMM_WORLD_LOCAL_RANK`,
MVAPICH's `MV2_COMM_WORLD_LOCAL_RANK`, MPICH's `MPI_LOCALRANKID`, Slurm's `SLURM_LOCALID`: these
count the ranks of `MPI_COMM_WORLD`), else computed by splitting `comm` into its shared-memory
nodes (`MPI_Comm_split_type(MPI_COMM_TYPE_SHARED)`, a collective over `comm`).
@pre MPI is initialised; every rank of `comm` calls it (the launcher sets the same variables for all).
*/
inline int local_rank(MPI_Comm comm = MPI_COMM_WORLD) {
  for (const char* name : {"OMPI_COMM_WORLD_LOCAL_RANK", "MV2_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID", "SLURM_LOCALID"})
    if (const int r = detail::env_index(name); r >= 0) return r;
  MPI_Comm node = MPI_COMM_NULL;
  int rank = 0;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, rank, MPI_INFO_NULL, &node);
  int local = 0;
  MPI_Comm_rank(node, &local);
  MPI_Comm_free(&node);
  return local;
}

/**
@brief Whether the MPI library accepts device memory (a CUDA- or ROCm-aware MPI), so that the
executor can send device buffers without staging them on the host.

`STRETTO_MPI_DEVICE_AWARE=1` (or `0`) decides when set; otherwise Open MPI's run-time query
(`MPIX_Query_cuda_support`, `MPIX_Query_rocm_support`) where the library was built with that
support; otherwise false (staging, which works with any MPI).
*/
inline bool device_aware_mpi() {
  if (const char* forced = std::getenv("STRETTO_MPI_DEVICE_AWARE"); forced != nullptr && *forced != '\0')
    return std::string_view(forced) != "0";
  bool aware = false;
#if defined(MPIX_CUDA_AWARE_SUPPORT) && MPIX_CUDA_AWARE_SUPPORT
  aware = aware || MPIX_Query_cuda_support() == 1;
#endif
#if defined(MPIX_ROCM_AWARE_SUPPORT) && MPIX_ROCM_AWARE_SUPPORT
  aware = aware || MPIX_Query_rocm_support() == 1;
#endif
  return aware;
}

}  // namespace stretto::mpi
