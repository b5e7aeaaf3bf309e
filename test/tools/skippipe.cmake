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
