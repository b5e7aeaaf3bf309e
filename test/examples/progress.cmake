# The demo's progress on stderr, which is not a terminal here: plain lines, one at each tenth of an
# epoch (1280 samples in batches of 128 = 10 steps: steps 1 to 9) and one per epoch's end, whose
# training ETA is 0:00 after the last epoch; stdout keeps its epoch lines.
add_test(NAME example.fashion_mnist.progress_plain_lines
  COMMAND ${CMAKE_COMMAND} -DEXPECT_EXIT=0
          "-DEXPECT_STDOUT=\nepoch 1/2  loss [^\n]*\nepoch 2/2  loss "
          "-DEXPECT_STDERR=\nprogress: epoch 1/2  step 1/10  [0-9]+ samples/s  epoch ETA [0-9]+:[0-9][0-9]  training ETA [0-9]+:[0-9][0-9]\n.*\nprogress: epoch 1/2  step 9/10 .*\nprogress: epoch 1/2 trained in [0-9.]+ s, [0-9]+ samples/s; training ETA [0-9:]+\n.*\nprogress: epoch 2/2 trained in [0-9.]+ s, [0-9]+ samples/s; training ETA 0:00\n$"
          -P ${_check} -- env STRETTO_LAUNCHER=mpirun ${_launch} -n 2 ${_demo} --train-samples 1280 --epochs 2)
set_tests_properties(example.fashion_mnist.progress_plain_lines PROPERTIES LABELS "example" PROCESSORS 2 TIMEOUT 300)
