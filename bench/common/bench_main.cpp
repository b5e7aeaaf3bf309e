/**
@file
@brief The shared `main` of Stretto's Google Benchmark executables: it records the build context
(Stretto version, compiler, build type, assertions, git revision, backends) in the report's
`context` block, so that numbers from different builds can be told apart.

The definitions `STRETTO_BENCH_VERSION`, `STRETTO_BENCH_BUILD_TYPE`, `STRETTO_BENCH_GIT_REVISION`
and `STRETTO_BENCH_BACKENDS` come from `bench/CMakeLists.txt`; the git revision is taken when
CMake configures, so it can lag behind later commits until the next configure.
*/

#include <benchmark/benchmark.h>

#ifndef STRETTO_BENCH_VERSION
#define STRETTO_BENCH_VERSION "unknown"
#endif
#ifndef STRETTO_BENCH_BUILD_TYPE
#define STRETTO_BENCH_BUILD_TYPE "unknown"
#endif
#ifndef STRETTO_BENCH_GIT_REVISION
#define STRETTO_BENCH_GIT_REVISION "unknown"
#endif
#ifndef STRETTO_BENCH_BACKENDS
#define STRETTO_BENCH_BACKENDS "none"
#endif

namespace {

/** @brief Returns the compiler's name and version, e.g. "GCC 12.2.0" or "Clang 14.0.6". */
constexpr const char* compiler_description() {
#if defined(__clang__)
  return "Clang " __clang_version__;
#elif defined(__GNUC__)
  return "GCC " __VERSION__;
#else
  return "unknown";
#endif
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::AddCustomContext("stretto_version", STRETTO_BENCH_VERSION);
  benchmark::AddCustomContext("stretto_compiler", compiler_description());
  benchmark::AddCustomContext("stretto_build_type", STRETTO_BENCH_BUILD_TYPE);
#ifdef NDEBUG
  benchmark::AddCustomContext("stretto_assertions", "off");
#else
  benchmark::AddCustomContext("stretto_assertions", "on");
#endif
  benchmark::AddCustomContext("stretto_git_revision", STRETTO_BENCH_GIT_REVISION);
  benchmark::AddCustomContext("stretto_backends", STRETTO_BENCH_BACKENDS);

  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
