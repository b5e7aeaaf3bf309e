# Options. Tests, tools, examples and install default to ON only when Stretto is the top-level
# project, so that add_subdirectory / FetchContent users get just the targets.
option(STRETTO_BUILD_TESTS "Build Stretto's tests" ${PROJECT_IS_TOP_LEVEL})
option(STRETTO_BUILD_TOOLS "Build the stretto-plan command-line planner" ${PROJECT_IS_TOP_LEVEL})
option(STRETTO_BUILD_EXAMPLES "Build the examples (the Fashion-MNIST demo needs MPI and Kokkos)" ${PROJECT_IS_TOP_LEVEL})
option(STRETTO_BUILD_BENCHMARKS "Build the Google Benchmark microbenchmarks" OFF)
option(STRETTO_INSTALL "Generate install rules and the CMake package" ${PROJECT_IS_TOP_LEVEL})
set(STRETTO_SANITIZE "" CACHE STRING "Sanitizers for the tests, tools and examples, e.g. address,undefined (empty: none)")
option(STRETTO_BUILD_FUZZERS "Build the libFuzzer harnesses of the file readers (clang only)" OFF)
option(STRETTO_WERROR "Treat warnings in Stretto's own code as errors" ${PROJECT_IS_TOP_LEVEL})
set(STRETTO_ENABLE_MPI "AUTO" CACHE STRING "Build the MPI backend: ON, OFF or AUTO (when MPI is found)")
set(STRETTO_ENABLE_KOKKOS "AUTO" CACHE STRING "Build the Kokkos backend: ON, OFF or AUTO (when Kokkos is found)")
set(STRETTO_ENABLE_CBC "AUTO" CACHE STRING "Build stretto::cbc, the exact scheduler: ON, OFF or AUTO (when CBC is found)")
set(STRETTO_GPU_ARCH "" CACHE STRING "The GPU architecture the Kokkos in use was built for, e.g. sm_90; recorded for scripts/gpu-check.sh, changes nothing in the build")
