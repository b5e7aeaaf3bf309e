// The doctest main of Stretto's MPI tests (Debian's doctest 2.4.9 has no MPI extension).
// Every rank runs every test case; failures are summed over ranks; only rank 0 prints the
// summary, other ranks print only their failing assertions. Kokkos is initialised when the test
// links the Kokkos backend. Exit code: 0 iff no rank failed.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>
#include <mpi.h>

#include <cstdio>
#if defined(STRETTO_HAS_KOKKOS)
#include <Kokkos_Core.hpp>
#endif

int main(int argc, char** argv) {
  // The communicator's progress thread needs MPI_THREAD_MULTIPLE (tests of both modes use it).
  int provided = 0;
  MPI_Init_thread(&argc, &argv, MPI_THREAD_MULTIPLE, &provided);
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
#if defined(STRETTO_HAS_KOKKOS)
  Kokkos::initialize(argc, argv);
#endif
  doctest::Context context(argc, argv);
  if (rank != 0) context.setOption("minimal", true);
  const int local = context.run();
  int failed = 0;
  MPI_Allreduce(&local, &failed, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  if (rank == 0) std::printf("mpi: %s on all ranks\n", failed ? "FAILED" : "passed");
#if defined(STRETTO_HAS_KOKKOS)
  Kokkos::finalize();
#endif
  MPI_Finalize();
  return failed ? 1 : 0;
}
