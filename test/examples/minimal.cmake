# The minimal trainer (examples/minimal) as tests: at 1 and 2 ranks under mpirun it trains to the
# same loss (the pipeline changes where the stages run, not the arithmetic), exits 0 and prints
# nothing on stderr but the launcher's line; and the README's snippet is its marked region.
# zb-h1 at m = 4 under unit costs: span 3m + p - 1, so 12 on 1 rank and 13 on 2.
set(_span_1 12)
set(_span_2 13)
foreach(_ranks IN ITEMS 1 2)
  add_test(NAME example.minimal.np${_ranks}
    COMMAND ${CMAKE_COMMAND} -DEXPECT_EXIT=0
            "-DEXPECT_STDOUT=minimal: zb-h1 on ${_ranks} ranks, 4 microbatches: simulated span ${_span_${_ranks}}, [^\n]*\nstep 10 loss 1.110113e-03\nstep 20 loss 1.413907e-04\nstep 30 loss 1.395935e-05\n$"
            "-DEXPECT_STDERR=^launch: mpirun -n ${_ranks} [^\n]*\n$"
            -P ${_check} -- env STRETTO_LAUNCHER=mpirun ${_launch} -n ${_ranks} $<TARGET_FILE:stretto.example.minimal>)
  set_tests_properties(example.minimal.np${_ranks} PROPERTIES LABELS "example;mpi" PROCESSORS ${_ranks} TIMEOUT 120)
endforeach()
add_test(NAME example.minimal.readme_snippet
  COMMAND ${CMAKE_COMMAND} -DREADME=${PROJECT_SOURCE_DIR}/README.md -DEXAMPLE=${PROJECT_SOURCE_DIR}/examples/minimal/main.cpp
          -P ${CMAKE_CURRENT_SOURCE_DIR}/check_readme_snippet.cmake)
set_tests_properties(example.minimal.readme_snippet PROPERTIES LABELS "example")
