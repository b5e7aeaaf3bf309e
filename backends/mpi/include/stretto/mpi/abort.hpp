#pragma once
/**
@file
@brief An error on one rank ends the whole job at once, reported by that rank.

In an MPI job an exception that one rank throws and the others do not (a message of the wrong
size, a non-finite loss, a failed allocation) leaves the other ranks waiting for that rank's
messages: the job ends only at their timeout, and their diagnostic blames the rank they wait for,
not the cause. `run_or_abort` runs a function and, if it throws, prints the error from the rank
that saw it, flushes, and calls `MPI_Abort`, so that the launcher (mpirun, srun) ends every rank
within about a second.
*/

#include <mpi.h>

#include <cstdio>
#include <exception>
#include <string>
#include <string_view>
#include <utility>

#include <stretto/detail/text.hpp>

#include "collectives.hpp"

namespace stretto::mpi {

/** @brief The exit code `run_or_abort` and `abort_job` give `MPI_Abort` unless told otherwise. */
inline constexpr int abort_code = 1;

/**
@brief Prints "PROGRAM: rank R: WHAT" (or "rank R: WHAT" without a program name) as one line on
stderr, flushes it, and aborts every rank of `comm`'s job with `code`. Does not return.
@pre MPI is initialised and not finalized.
*/
[[noreturn]] inline void abort_job(MPI_Comm comm, std::string_view what, std::string_view program = {},
                                   int code = abort_code) {
  int rank = 0;
  MPI_Comm_rank(comm, &rank);
  const std::string line = program.empty() ? stretto::detail::cat("rank ", rank, ": ", what)
                                           : stretto::detail::cat(program, ": rank ", rank, ": ", what);
  detail::abort_with(comm, line, code);
}

/**
@brief Returns `fn()`; if it throws, reports the error from this rank and ends the job
(`abort_job`: "PROGRAM: rank R: WHAT" on stderr, then `MPI_Abort(comm, code)`).

Use it around everything a rank does after the ranks start to depend on each other (once the
communicators exist): a rank's own error then reaches the user at once, with its rank, instead of
a timeout on another rank minutes later. Errors that every rank detects identically (bad
arguments) are better reported before, once, by one rank.
*/
template <class Fn>
decltype(auto) run_or_abort(MPI_Comm comm, Fn&& fn, std::string_view program = {}, int code = abort_code) {
  try {
    return std::forward<Fn>(fn)();
  } catch (const std::exception& e) {
    abort_job(comm, e.what(), program, code);
  } catch (...) {
    abort_job(comm, "an exception of unknown type", program, code);
  }
}

}  // namespace stretto::mpi
