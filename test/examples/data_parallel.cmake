# Data parallelism end to end: the step API example (examples/step_api) gives the same losses at
# every data-parallel size.
if(TARGET stretto.example.step_api)
  add_test(NAME example.step_api.data_parallel_same_loss
    COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/run_step_api.sh ${MPIEXEC_EXECUTABLE} $<TARGET_FILE:stretto.example.step_api>)
  set_tests_properties(example.step_api.data_parallel_same_loss PROPERTIES
    LABELS "example;mpi" PROCESSORS 4 TIMEOUT 300 PASS_REGULAR_EXPRESSION "run_step_api: ok"
    ENVIRONMENT "OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1;OMPI_MCA_rmaps_base_oversubscribe=1;OMPI_MCA_mpi_yield_when_idle=1;OMPI_MCA_btl_vader_single_copy_mechanism=none;OPENBLAS_NUM_THREADS=1")
endif()

# The demo with --data-parallel 2 (pp = 2 × dp = 2) trains to the loss and accuracy of dp = 1.
if(TARGET stretto.example.fashion_mnist)
  add_test(NAME example.fashion_mnist.data_parallel_same_accuracy
    COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/run_demo_data_parallel.sh ${PROJECT_SOURCE_DIR}/scripts/launch.sh
            $<TARGET_FILE:stretto.example.fashion_mnist>)
  set_tests_properties(example.fashion_mnist.data_parallel_same_accuracy PROPERTIES
    LABELS "example;mpi" PROCESSORS 4 TIMEOUT 300 PASS_REGULAR_EXPRESSION "run_demo_data_parallel: ok")
endif()
stretto_demo_rejects(data_parallel_not_dividing 3
  "fashion_mnist: error: --data-parallel 2 does not divide the 3 ranks \\(ranks = data-parallel copies x pipeline ranks\\); use one of 1, 3"
  --data-parallel 2)
stretto_demo_rejects(batch_not_divisible_by_copies 4
  "fashion_mnist: error: --batch-size 120 is not divisible by --data-parallel 2 x --microbatches 8; use a multiple of 16"
  --data-parallel 2 --batch-size 120 --microbatches 8)
