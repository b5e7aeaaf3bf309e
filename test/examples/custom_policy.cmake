# The custom-policy example as a test: 4 MPI ranks; it validates, simulates, lowers and runs the
# user's policy, compares the weights with a sequential run, and prints "all checks passed".
if(TARGET stretto.example.custom_policy)
  add_test(NAME example.custom_policy.np4
    COMMAND ${MPIEXEC_EXECUTABLE} ${MPIEXEC_NUMPROC_FLAG} 4 --oversubscribe ${MPIEXEC_PREFLAGS}
            $<TARGET_FILE:stretto.example.custom_policy> ${MPIEXEC_POSTFLAGS})
  set_tests_properties(example.custom_policy.np4 PROPERTIES
    LABELS "example;mpi" PROCESSORS 4 TIMEOUT 120
    PASS_REGULAR_EXPRESSION "custom_policy: all checks passed"
    FAIL_REGULAR_EXPRESSION "check failed|FAILED"
    ENVIRONMENT "OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1;OMPI_MCA_rmaps_base_oversubscribe=1;OMPI_MCA_mpi_yield_when_idle=1;OMPI_MCA_btl_vader_single_copy_mechanism=none;OPENBLAS_NUM_THREADS=1")
endif()
