# The pictures in a real browser (label "browser"). For every schedule of `stretto-plan list` at
# p = 4, m = 8: export the SVG and the Chrome trace, then let headless Chromium
# - load each SVG as its own document, count its op boxes (must equal the schedule's op count, as
#   `simulate --format json` reports it), draw it at its size and require coloured pixels;
# - parse each trace with JSON.parse as the Trace Event Format (page.js says what is checked);
# - take one real screenshot (zb-v) and check the PNG's size.
# Skips (the message "browser test skipped", ctest SKIP_REGULAR_EXPRESSION) when no chromium is installed. Run as
#   cmake -DPLAN=<stretto-plan> -DWORK=<dir> -DPAGE_JS=<page.js> [-DCHROMIUM=<path>] -P check_browser.cmake
cmake_minimum_required(VERSION 3.24)
if(NOT CHROMIUM)
  find_program(CHROMIUM NAMES chromium chromium-browser google-chrome)
endif()
if(NOT CHROMIUM)
  message("browser test skipped: no chromium found (Debian: apt-get install chromium, or scripts/install-deps.sh)")
  return()
endif()
file(REMOVE_RECURSE "${WORK}")
file(MAKE_DIRECTORY "${WORK}")
execute_process(COMMAND "${PLAN}" list OUTPUT_VARIABLE _list RESULT_VARIABLE _rc)
string(REGEX MATCHALL "(^|\n)[a-z0-9-]+" _names "${_list}")
set(_costs --ranks 4 --microbatches 8 --t-forward 1 --t-backward 1 --t-weight 1 --t-comm 0)
set(_cases "")
set(_count 0)
foreach(_name IN LISTS _names)
  string(STRIP "${_name}" _name)
  set(_extra)
  if(_name STREQUAL "auto" OR _name STREQUAL "auto-v")
    set(_extra --memory-limit 4)
  endif()
  execute_process(COMMAND "${PLAN}" simulate --schedule ${_name} ${_costs} ${_extra} --format json
                  OUTPUT_VARIABLE _report RESULT_VARIABLE _rc ERROR_QUIET)
  if(NOT _rc EQUAL 0)
    continue()  # the policy refuses p = 4, m = 8
  endif()
  string(REGEX MATCH "\"ops_per_rank\": \\[([0-9, \n]*)\\]" _ : "${_report}")
  string(REGEX MATCHALL "[0-9]+" _per_rank "${CMAKE_MATCH_1}")
  set(_ops 0)
  foreach(_n IN LISTS _per_rank)
    math(EXPR _ops "${_ops} + ${_n}")
  endforeach()
  execute_process(COMMAND "${PLAN}" export --schedule ${_name} ${_costs} ${_extra} --svg "${WORK}/${_name}.svg"
                          --trace "${WORK}/${_name}.trace.json" RESULT_VARIABLE _rc OUTPUT_QUIET)
  if(NOT _rc EQUAL 0)
    message(FATAL_ERROR "export of ${_name} failed")
  endif()
  string(APPEND _cases "['${_name}', '${_name}.svg', '${_name}.trace.json', ${_ops}],\n")
  math(EXPR _count "${_count} + 1")
endforeach()
file(READ "${PAGE_JS}" _script)
file(WRITE "${WORK}/page.html"
  "<!DOCTYPE html><html><head><title>running</title></head><body><pre id=\"result\"></pre>\n"
  "<script>const CASES = [\n${_cases}];\n${_script}</script></body></html>\n")

set(_flags --headless --no-sandbox --disable-gpu --allow-file-access-from-files --no-first-run
           --user-data-dir=${WORK}/profile)
execute_process(COMMAND "${CHROMIUM}" ${_flags} --virtual-time-budget=30000 --dump-dom "file://${WORK}/page.html"
                OUTPUT_VARIABLE _dom ERROR_VARIABLE _err RESULT_VARIABLE _rc TIMEOUT 60)
string(REGEX MATCH "<pre id=\"result\">([^<]*)</pre>" _ : "${_dom}")
set(_result "${CMAKE_MATCH_1}")
string(REGEX MATCHALL "(svg|trace) [^\n]* OK " _ok "${_result}")
list(LENGTH _ok _passed)
math(EXPR _expected "2 * ${_count}")
message(STATUS "chromium: ${CHROMIUM}; ${_count} schedules${_result}")
if(NOT _rc EQUAL 0 OR NOT _passed EQUAL _expected OR _count LESS 15)
  message(FATAL_ERROR "browser check: ${_passed} of ${_expected} checks passed (exit ${_rc})\n${_result}\n${_err}")
endif()

# One real screenshot: the window is the SVG's size, the PNG must be that size.
file(READ "${WORK}/zb-v.svg" _svg LIMIT 400)
string(REGEX MATCH "width=\"([0-9]+)\" height=\"([0-9]+)\"" _ "${_svg}")
set(_w ${CMAKE_MATCH_1})
set(_h ${CMAKE_MATCH_2})
execute_process(COMMAND "${CHROMIUM}" ${_flags} --hide-scrollbars --window-size=${_w},${_h} --screenshot=${WORK}/zb-v.png
                        "file://${WORK}/zb-v.svg" RESULT_VARIABLE _rc OUTPUT_QUIET ERROR_QUIET TIMEOUT 60)
file(READ "${WORK}/zb-v.png" _png LIMIT 24 HEX)
string(SUBSTRING "${_png}" 32 8 _pw)
string(SUBSTRING "${_png}" 40 8 _ph)
math(EXPR _pw "0x${_pw}")
math(EXPR _ph "0x${_ph}")
file(SIZE "${WORK}/zb-v.png" _bytes)
if(NOT _rc EQUAL 0 OR NOT _pw EQUAL _w OR NOT _ph EQUAL _h OR _bytes LESS 10000)
  message(FATAL_ERROR "screenshot of zb-v.svg: ${_pw}x${_ph} px, ${_bytes} bytes (expected ${_w}x${_h}, not blank)")
endif()
message(STATUS "screenshot zb-v.png: ${_pw}x${_ph} px, ${_bytes} bytes")
