// Bounded collectives, timeouts that cannot disable themselves, and the start-up agreement
// (stretto/mpi/collectives.hpp, agreement.hpp, abort.hpp). The end-to-end faults (a rank killed
// or stopped, ranks with different arguments, a NaN) are the `fault` tests in test/fault.
#include <doctest/doctest.h>

#include <mpi.h>

#include <chrono>
#include <cmath>
#include <limits>
#include <string>
#include <thread>
#include <vector>

#include <stretto/mpi/abort.hpp>
#include <stretto/mpi/agreement.hpp>
#include <stretto/mpi/collectives.hpp>
#include <stretto/mpi/communicator.hpp>
#include "common/mpi_world.hpp"

namespace {
stretto::mpi::collective_options throwing(double seconds) {
  return {std::chrono::duration<double>(seconds), stretto::mpi::timeout_action::throw_error};
}
}  // namespace

TEST_CASE("mpi.reliability.timeouts_must_be_finite_and_positive") {
  const double bad[] = {std::numeric_limits<double>::quiet_NaN(), std::numeric_limits<double>::infinity(), -1.0, 0.0};
  for (const double t : bad) {
    CAPTURE(t);
    CHECK_THROWS_WITH_AS(stretto::mpi::check_timeout(std::chrono::duration<double>(t)),
                         doctest::Contains("must be a finite number of seconds above 0"), stretto::argument_error);
    // The communicator refuses it before any collective (every rank throws alike).
    stretto::mpi::communicator_options o;
    o.timeout = std::chrono::duration<double>(t);
    CHECK_THROWS_WITH_AS(stretto::mpi::communicator(MPI_COMM_WORLD, stretto::pipeline_shape{world_size(), 2, 1}, o),
                         doctest::Contains("communicator's timeout must be a finite number"), stretto::argument_error);
  }
  stretto::mpi::communicator_options o;
  o.setup_timeout = std::chrono::duration<double>(std::numeric_limits<double>::quiet_NaN());
  CHECK_THROWS_WITH_AS(stretto::mpi::communicator(MPI_COMM_WORLD, stretto::pipeline_shape{world_size(), 2, 1}, o),
                       doctest::Contains("communicator's setup_timeout must be a finite number"), stretto::argument_error);
  CHECK_NOTHROW(stretto::mpi::check_timeout(std::chrono::duration<double>(1e-3)));
}

TEST_CASE("mpi.reliability.bounded_collectives_compute_what_the_blocking_ones_do" * doctest::timeout(60)) {
  const int rank = world_rank(), size = world_size();
  const auto o = throwing(30.0);
  long long sum[2] = {rank, 1};
  stretto::mpi::allreduce(MPI_IN_PLACE, sum, 2, MPI_LONG_LONG, MPI_SUM, MPI_COMM_WORLD, o, "test");
  CHECK(sum[0] == static_cast<long long>(size) * (size - 1) / 2);
  CHECK(sum[1] == size);
  int value = rank == 0 ? 42 : 0;
  stretto::mpi::broadcast(&value, 1, MPI_INT, 0, MPI_COMM_WORLD, o, "test");
  CHECK(value == 42);
  std::vector<int> all(static_cast<std::size_t>(size), -1);
  stretto::mpi::allgather(&rank, 1, MPI_INT, all.data(), 1, MPI_INT, MPI_COMM_WORLD, o, "test");
  for (int r = 0; r < size; ++r) CHECK(all[static_cast<std::size_t>(r)] == r);
  std::vector<int> gathered(rank == 0 ? static_cast<std::size_t>(size) : 0);
  const int square = rank * rank;
  stretto::mpi::gather(&square, 1, MPI_INT, gathered.data(), 1, MPI_INT, 0, MPI_COMM_WORLD, o, "test");
  if (rank == 0)
    for (int r = 0; r < size; ++r) CHECK(gathered[static_cast<std::size_t>(r)] == r * r);
  long long total = 0;
  const long long mine = rank + 1;
  stretto::mpi::reduce(&mine, &total, 1, MPI_LONG_LONG, MPI_SUM, 0, MPI_COMM_WORLD, o, "test");
  if (rank == 0) CHECK(total == static_cast<long long>(size) * (size + 1) / 2);
  MPI_Comm copy = stretto::mpi::duplicate(MPI_COMM_WORLD, o, "test");
  int same = MPI_UNEQUAL;
  MPI_Comm_compare(copy, MPI_COMM_WORLD, &same);
  CHECK(same == MPI_CONGRUENT);
  MPI_Comm_free(&copy);
  stretto::mpi::barrier(MPI_COMM_WORLD, o, "test");
}

TEST_CASE("mpi.reliability.a_late_rank_times_out_a_barrier_and_a_duplication" * doctest::timeout(60)) {
  // The last rank joins 1.5 s late; the others give up after 0.3 s with a diagnostic naming
  // their rank, the collective and what it was for, then finish the collective once it joins.
  const int rank = world_rank(), size = world_size();
  const bool late = rank == size - 1;
  const auto o = throwing(0.3);
  {
    MPI_Request r = MPI_REQUEST_NULL;
    if (late) std::this_thread::sleep_for(std::chrono::milliseconds(1500));
    MPI_Ibarrier(MPI_COMM_WORLD, &r);
    if (late) {
      CHECK_NOTHROW(stretto::mpi::wait_collective(r, MPI_COMM_WORLD, o, "MPI_Ibarrier", "start of a step"));
    } else {
      const std::string expected = stretto::detail::cat(
          "stretto::mpi: rank ", rank, " timed out after 0.3 s in MPI_Ibarrier (start of a step) over ", size, " ranks");
      const auto start = std::chrono::steady_clock::now();
      CHECK_THROWS_WITH_AS(stretto::mpi::wait_collective(r, MPI_COMM_WORLD, o, "MPI_Ibarrier", "start of a step"),
                           doctest::Contains(expected.c_str()), stretto::timeout_error);
      const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      CHECK(waited >= 0.3);
      CHECK(waited < 1.4);  // well before the late rank arrives
      MPI_Wait(&r, MPI_STATUS_IGNORE);
    }
  }
  {
    MPI_Comm copy = MPI_COMM_NULL;
    MPI_Request r = MPI_REQUEST_NULL;
    if (late) std::this_thread::sleep_for(std::chrono::milliseconds(1500));
    MPI_Comm_idup(MPI_COMM_WORLD, &copy, &r);
    if (!late) {
      CHECK_THROWS_WITH_AS(stretto::mpi::wait_collective(r, MPI_COMM_WORLD, o, "MPI_Comm_idup", "constructing"),
                           doctest::Contains("in MPI_Comm_idup (constructing)"), stretto::timeout_error);
    }
    MPI_Wait(&r, MPI_STATUS_IGNORE);
    MPI_Comm_free(&copy);
  }
  MPI_Barrier(MPI_COMM_WORLD);
}

TEST_CASE("mpi.reliability.records_show_values_and_name_what_differs") {
  using stretto::mpi::record_of;
  CHECK(std::string(record_of("8").shown.data()) == "8");
  const std::string long_value(40, 'x');
  CHECK(std::string(record_of(long_value).shown.data()) == std::string(28, 'x') + "...");
  CHECK(record_of(long_value).hash == stretto::mpi::fingerprint(long_value));
  CHECK(record_of(long_value + "y").hash != record_of(long_value).hash);  // compared in full, not as shown
  // FNV-1a's published test value for "a".
  CHECK(stretto::mpi::fingerprint("a") == 0xaf63dc4c8601ec8cULL);
  const std::string names[] = {"schedule", "microbatches", "seed"};
  const std::vector<stretto::mpi::field_record> records{
      record_of("1f1b"), record_of("8"), record_of("1"),    // rank 0
      record_of("1f1b"), record_of("8"), record_of("1"),    // rank 1 agrees
      record_of("zb-h1"), record_of("4"), record_of("1")};  // rank 2 does not
  const auto found = stretto::mpi::compare_records(names, records);
  REQUIRE(found.size() == 1);
  CHECK(found[0].rank == 2);
  CHECK(found[0].text() == "rank 2 disagrees with rank 0 on: schedule (zb-h1 vs 1f1b), microbatches (4 vs 8)");
}

TEST_CASE("mpi.reliability.every_rank_learns_which_ranks_and_fields_differ" * doctest::timeout(60)) {
  const int rank = world_rank(), size = world_size();
  const auto o = throwing(30.0);
  const bool odd_one = rank == size - 1;
  const std::vector<stretto::mpi::agreement_field> fields{
      {"microbatches", odd_one ? "4" : "8"}, {"seed", "1"}, {"lr", odd_one ? "0.5" : "0.05"}};
  const auto found = stretto::mpi::compare_across_ranks(MPI_COMM_WORLD, fields, o);
  REQUIRE(found.size() == 1);
  CHECK(found[0].text() == stretto::detail::cat("rank ", size - 1, " disagrees with rank 0 on: microbatches (4 vs 8), lr (0.5 vs 0.05)"));
  const std::vector<stretto::mpi::agreement_field> same{{"microbatches", "8"}, {"seed", "1"}};
  CHECK(stretto::mpi::compare_across_ranks(MPI_COMM_WORLD, same, o).empty());
  stretto::mpi::require_agreement(MPI_COMM_WORLD, same, o);  // returns: all agree
  // A different list of fields (another build) is reported as such, not compared field by field.
  std::vector<stretto::mpi::agreement_field> listed = same;
  if (odd_one) listed.push_back({"extra", "1"});
  const auto mismatch = stretto::mpi::compare_across_ranks(MPI_COMM_WORLD, listed, o);
  REQUIRE(mismatch.size() == 1);
  CHECK(mismatch[0].text().find(stretto::detail::cat("rank ", size - 1, " disagrees with rank 0 on: fields (3 fields #")) == 0);
}

TEST_CASE("mpi.reliability.run_or_abort_returns_the_result_when_nothing_throws") {
  CHECK(stretto::mpi::run_or_abort(MPI_COMM_WORLD, [] { return 7; }) == 7);
  int calls = 0;
  stretto::mpi::run_or_abort(MPI_COMM_WORLD, [&] { ++calls; });
  CHECK(calls == 1);
}
