// Includes the installed headers (and the backends' when they were found) and checks a value.
// Shared by the find_package, add_subdirectory and FetchContent consumers.
#include <stretto/stretto.hpp>
#if defined(STRETTO_HAS_MPI)
#include <stretto/mpi/communicator.hpp>
#endif
#if defined(STRETTO_HAS_KOKKOS)
#include <stretto/kokkos/executor.hpp>
#endif
#if defined(STRETTO_HAS_BOOST_GRAPH)
#include <stretto/graph/dependency_graph.hpp>
#endif

#include <cstdio>

#if !defined(STRETTO_CONSUMER_FLAG)
#error "the consumer's own CMAKE_CXX_FLAGS did not reach its compile"
#endif

int main() {
  const auto s = stretto::make_schedule<stretto::policies::one_f_one_b>({4, 8, 1});
  const double span = stretto::sim::simulate(s, stretto::sim::uniform_costs{}).metrics.span;
  std::printf("consumer: 1F1B p=4 m=8 span %g\n", span);
#if defined(STRETTO_HAS_BOOST_GRAPH)
  const double critical = stretto::graph::critical_path(stretto::graph::dependency_graph(s), stretto::sim::uniform_costs{}).length;
  std::printf("consumer: critical path %g\n", critical);
  if (critical != span) return 1;
#endif
  return span == 33.0 ? 0 : 1;
}
