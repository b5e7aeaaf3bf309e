# The step API example (examples/step_api): the same losses at every data-parallel size.
if(TARGET stretto.example.step_api)
  add_test(NAME example.step_api.data_parallel_same_loss
    COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/run_step_api.sh ${MPIEXEC_EXECUTABLE} $<TARGET_FILE:stretto.example.step_api>)
  set_tests_properties(example.step_api.data_parallel_same_loss PROPERTIES
    LABELS "example;mpi" PROCESSORS 4 TIMEOUT 300 PASS_REGULAR_EXPRESSION "run_step_api: ok"
    ENVIRONMENT "OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1;OMPI_MCA_rmaps_base_oversubscribe=1;OMPI_MCA_mpi_yield_when_idle=1;OMPI_MCA_btl_vader_single_copy_mechanism=none;OPENBLAS_NUM_THREADS=1")
endif()
