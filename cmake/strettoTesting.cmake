# Helpers to register Stretto's tests.
#
#   stretto_add_test(<name> SOURCES <files...> [LIBS <targets...>] [LABELS <labels...>])
#     A doctest executable `stretto.test.<name>` linked with the shared main; its cases are
#     registered one by one with doctest_discover_tests.
#
#   stretto_add_mpi_test(<name> SOURCES <files...> NPROCS <n...> [LIBS ...] [TIMEOUT s])
#     A doctest executable linked with the MPI main, registered once per process count as
#     `mpi.<name>.np<N>` under mpiexec (discovery cannot run under mpiexec).
include_guard(GLOBAL)
find_package(doctest CONFIG REQUIRED)
include(doctest)

add_library(stretto_test_main OBJECT ${PROJECT_SOURCE_DIR}/test/common/test_main.cpp)
target_link_libraries(stretto_test_main PUBLIC doctest::doctest stretto::stretto stretto_warnings)

function(stretto_add_test name)
  cmake_parse_arguments(ARG "" "" "SOURCES;LIBS;LABELS" ${ARGN})
  set(target stretto.test.${name})
  add_executable(${target} ${ARG_SOURCES})
  target_link_libraries(${target} PRIVATE stretto_test_main ${ARG_LIBS})
  target_include_directories(${target} PRIVATE ${PROJECT_SOURCE_DIR}/test)
  # doctest_discover_tests passes PROPERTIES through a command line that splits a list value, so
  # only the first label would survive: the labels are set by an include file run after the
  # discovered tests are defined instead.
  doctest_discover_tests(${target} TEST_PREFIX "${name}." TEST_LIST ${target}_tests)
  set(labels_file ${CMAKE_CURRENT_BINARY_DIR}/${target}_labels.cmake)
  file(WRITE ${labels_file}
    "if(${target}_tests)\n  set_tests_properties(\${${target}_tests} PROPERTIES LABELS \"unit;${ARG_LABELS}\")\nendif()\n")
  set_property(DIRECTORY APPEND PROPERTY TEST_INCLUDE_FILES ${labels_file})
endfunction()

function(stretto_add_mpi_test name)
  cmake_parse_arguments(ARG "" "TIMEOUT" "SOURCES;LIBS;NPROCS" ${ARGN})
  if(NOT ARG_TIMEOUT)
    set(ARG_TIMEOUT 600)
  endif()
  set(target stretto.test.mpi.${name})
  add_executable(${target} ${ARG_SOURCES} ${PROJECT_SOURCE_DIR}/test/common/mpi_main.cpp)
  target_link_libraries(${target} PRIVATE doctest::doctest stretto::mpi stretto_warnings ${ARG_LIBS})
  target_include_directories(${target} PRIVATE ${PROJECT_SOURCE_DIR}/test)
  foreach(n IN LISTS ARG_NPROCS)
    add_test(NAME mpi.${name}.np${n}
      COMMAND ${MPIEXEC_EXECUTABLE} ${MPIEXEC_NUMPROC_FLAG} ${n} --oversubscribe ${MPIEXEC_PREFLAGS}
              $<TARGET_FILE:${target}> ${MPIEXEC_POSTFLAGS})
    set_tests_properties(mpi.${name}.np${n} PROPERTIES
      LABELS "mpi" PROCESSORS ${n} TIMEOUT ${ARG_TIMEOUT}
      ENVIRONMENT "OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1;OMPI_MCA_rmaps_base_oversubscribe=1;OMPI_MCA_mpi_yield_when_idle=1;OMPI_MCA_btl_vader_single_copy_mechanism=none;OPENBLAS_NUM_THREADS=1")
  endforeach()
endfunction()
