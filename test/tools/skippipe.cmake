# Tests of `stretto-plan skippipe` (included by CMakeLists.txt; label "tools").

# The acceptance run: on the geo-distributed preset SkipPipe's simulated iteration is the
# shortest of the three.
stretto_plan_test(skippipe_geo_shortest EXIT 0
  STDOUT "^SkipPipe on preset geo-distributed \\(seed 1\\): 20 nodes, 6 stages \\(5,3,3,3,3,3 nodes\\), 30 microbatches \\(6 per stage-0 node\\), memory 3, path length 4 of 6.*\n  shortest: skippipe \\(.*per-node load.*\n    19      5 .*skippipe paths.*\n  microbatch  29: "
  ARGS skippipe --preset geo-distributed --seed 1)
stretto_plan_test(skippipe_json EXIT 0
  STDOUT "^{\n  \"setting\": \"preset 5-clusters\",\n  \"seed\": 2,\n  \"nodes\": 20,.*\"results\": .\n    {\"name\": \"skippipe\", \"iteration_time\": [0-9.]+, \"ratio_to_full_pipeline\": 0\\.[0-9]+, \"forwards_per_node\": .6, .*{\"name\": \"full-pipeline\", \"iteration_time\": [0-9.]+, \"ratio_to_full_pipeline\": 1, .*{\"name\": \"random-skip\", .*\n  .\n}\n$"
  ARGS skippipe --preset 5-clusters --seed 2 --json)
# Three nodes in a line, path length 3 of 3 (no skipping): the full pipeline is the hand-computed
# timeline of test/skippipe/test_simulate.cpp (iteration 20).
stretto_plan_test(skippipe_setting_file EXIT 0
  STDOUT "\n  full-pipeline +20\\.00 +1\\.000 x full pipeline\n"
  ARGS skippipe --setting ${_dir}/skippipe_three_nodes.json)
# Errors: exit status 2 and one line naming the rule.
stretto_plan_test(skippipe_no_setting EXIT 2 ONE_ERROR_LINE
  STDERR "^stretto-plan: error: give exactly one of --setting FILE and --preset NAME"
  ARGS skippipe)
stretto_plan_test(skippipe_unknown_preset EXIT 2 ONE_ERROR_LINE
  STDERR "^stretto-plan: error: unknown skippipe preset 'moon'. valid presets: single-cluster, 5-clusters, geo-distributed\n$"
  ARGS skippipe --preset moon)
stretto_plan_test(skippipe_bad_seed EXIT 2 ONE_ERROR_LINE
  STDERR "^stretto-plan: error: --seed must be a whole number from 0 to 18446744073709551615 \\(got '-1'\\)"
  ARGS skippipe --preset single-cluster --seed -1)
stretto_plan_test(skippipe_missing_file EXIT 2 ONE_ERROR_LINE
  STDERR "^stretto-plan: error: --setting [^ ]*nowhere.json: no such file"
  ARGS skippipe --setting ${_dir}/nowhere.json)
stretto_plan_test(skippipe_unknown_key EXIT 2 ONE_ERROR_LINE
  STDERR "^stretto-plan: error: --setting [^ ]*skippipe_bad_key.json:6:12: speed: unknown key. valid keys: "
  ARGS skippipe --setting ${_dir}/skippipe_bad_key.json)
# --time-limit: the planner stops at its deadline (1 ns has always passed by the first candidate,
# so the test is timing-free) and the command exits 2 with the time-limit line; bad limits refused.
stretto_plan_test(skippipe_time_limit EXIT 2 ONE_ERROR_LINE
  STDERR "^stretto-plan: error: skippipe planning ran past --time-limit 1e-09 s and was stopped. give a larger --time-limit"
  ARGS skippipe --preset geo-distributed --seed 1 --time-limit 1e-9)
stretto_plan_test(skippipe_time_limit_bad EXIT 2 ONE_ERROR_LINE
  STDERR "^stretto-plan: error: --time-limit must be a finite number of seconds > 0, e.g. 60 \\(got '0'\\)\n$"
  ARGS skippipe --preset geo-distributed --time-limit 0)

# --trace / --svg: the plan's iteration as a Chrome trace (one process per node, an arrow per
# message along each path) and the plan above the full pipeline as one SVG. Geo-distributed, 30
# microbatches, paths of L = 4 of S = 6 stages: each microbatch runs L forwards, the loss and L
# backwards (30 · 9 = 270 ops) and sends 2L = 8 messages (every hop changes node: 240); the full
# pipeline adds 30 · (2S + 1) = 390 boxes to the SVG (660).
add_test(NAME tools.stretto_plan.skippipe_pictures_geo
  COMMAND ${CMAKE_COMMAND} -DTRACE=${CMAKE_CURRENT_BINARY_DIR}/skippipe_geo.trace.json
          -DSVG=${CMAKE_CURRENT_BINARY_DIR}/skippipe_geo.svg -DEXPECT_OPS=270 -DEXPECT_FLOWS=240 -DEXPECT_BOXES=660
          -P ${CMAKE_CURRENT_SOURCE_DIR}/check_skippipe_pictures.cmake --
          $<TARGET_FILE:stretto-plan> skippipe --preset geo-distributed --seed 1
          --trace ${CMAKE_CURRENT_BINARY_DIR}/skippipe_geo.trace.json --svg ${CMAKE_CURRENT_BINARY_DIR}/skippipe_geo.svg)
# Three nodes in a line (compute 1, 2, 1; latency 0.5; backward 2×, loss 0.5×; 2 microbatches):
# the planner's paths are 0 > 2 > 1 and 0 > 1 > 2, and the trace holds the simulated times in µs
# (the setting's unit read as seconds): microbatch 0's forward on node 2 starts at 1.5 (its forward
# on node 0 ends at 1, plus the latency) and lasts w_2 = 1; microbatch 0's backward on node 1 lasts
# 2 · w_1 = 4; the iteration ends at 19. 2 · 7 ops, 2 · 6 messages; the full pipeline adds 14 boxes.
add_test(NAME tools.stretto_plan.skippipe_pictures_three_nodes
  COMMAND ${CMAKE_COMMAND} -DTRACE=${CMAKE_CURRENT_BINARY_DIR}/skippipe_three.trace.json
          -DSVG=${CMAKE_CURRENT_BINARY_DIR}/skippipe_three.svg -DEXPECT_OPS=14 -DEXPECT_FLOWS=12 -DEXPECT_BOXES=28
          "-DTRACE_REGEX=\"iteration_time\": 19000000}.*\"name\": \"F0\", \"cat\": \"F\", \"ph\": \"X\", \"pid\": 2, \"tid\": 0, \"ts\": 1500000, \"dur\": 1000000,.*\"name\": \"B0\", \"cat\": \"B\", \"ph\": \"X\", \"pid\": 1, \"tid\": 0, \"ts\": 8000000, \"dur\": 4000000, \"args\": {\"stage\": 1, \"microbatch\": 0, \"kind\": \"backward\", \"node\": 1}"
          -P ${CMAKE_CURRENT_SOURCE_DIR}/check_skippipe_pictures.cmake --
          $<TARGET_FILE:stretto-plan> skippipe --setting ${_dir}/skippipe_three_nodes.json
          --trace ${CMAKE_CURRENT_BINARY_DIR}/skippipe_three.trace.json --svg ${CMAKE_CURRENT_BINARY_DIR}/skippipe_three.svg)
set_tests_properties(tools.stretto_plan.skippipe_pictures_geo tools.stretto_plan.skippipe_pictures_three_nodes
  PROPERTIES LABELS tools TIMEOUT 120)
# A file that cannot be written: exit status 1 and one line naming the option and the file.
stretto_plan_test(skippipe_trace_unwritable EXIT 1 ONE_ERROR_LINE
  STDERR "^stretto-plan: error: --trace /nonexistent-dir/x.json: cannot write the file"
  ARGS skippipe --preset single-cluster --trace /nonexistent-dir/x.json)
