# Runs `stretto-plan skippipe ... --trace TRACE --svg SVG`, then checks what it wrote: the trace
# parses as one JSON object with a traceEvents array holding EXPECT_OPS complete events ("ph":
# "X") and EXPECT_FLOWS flow starts and as many flow ends; it matches TRACE_REGEX; the SVG holds
# EXPECT_BOXES op boxes in two stacked pictures (the plan above the full pipeline).
#   cmake -DTRACE=<file> -DSVG=<file> -DEXPECT_OPS=<n> -DEXPECT_FLOWS=<n> -DEXPECT_BOXES=<n>
#         [-DTRACE_REGEX=<regex>] -P check_skippipe_pictures.cmake -- <command...>
cmake_minimum_required(VERSION 3.24)
include(${CMAKE_CURRENT_LIST_DIR}/../common/command_after_separator.cmake)
stretto_command_after_separator(_command)
file(REMOVE "${TRACE}" "${SVG}")
execute_process(COMMAND ${_command} RESULT_VARIABLE _status OUTPUT_VARIABLE _out ERROR_VARIABLE _err)
if(NOT _status EQUAL 0)
  message(FATAL_ERROR "stretto-plan failed (${_status}):\n${_out}\n${_err}")
endif()
file(READ "${TRACE}" _trace)
string(JSON _events ERROR_VARIABLE _json_error LENGTH "${_trace}" traceEvents)
if(_json_error)
  message(FATAL_ERROR "${TRACE} is not a trace JSON object: ${_json_error}")
endif()
string(REGEX MATCHALL "\"ph\": \"X\"" _ops "${_trace}")
string(REGEX MATCHALL "\"ph\": \"s\"" _starts "${_trace}")
string(REGEX MATCHALL "\"ph\": \"f\"" _ends "${_trace}")
list(LENGTH _ops _ops)
list(LENGTH _starts _starts)
list(LENGTH _ends _ends)
file(READ "${SVG}" _svg)
string(REGEX MATCHALL "<rect class=\"op " _boxes "${_svg}")
list(LENGTH _boxes _boxes)
string(REGEX MATCHALL "<svg" _roots "${_svg}")
list(LENGTH _roots _roots)
if(NOT _ops EQUAL EXPECT_OPS OR NOT _starts EQUAL EXPECT_FLOWS OR NOT _ends EQUAL EXPECT_FLOWS OR NOT _boxes EQUAL EXPECT_BOXES
   OR NOT _roots EQUAL 3)
  message(FATAL_ERROR "expected ${EXPECT_OPS} ops and ${EXPECT_FLOWS} flows in the trace, ${EXPECT_BOXES} op boxes in 2 "
                      "pictures; got ${_ops} ops, ${_starts} flow starts, ${_ends} flow ends, ${_boxes} boxes, ${_roots} <svg>")
endif()
if(DEFINED TRACE_REGEX AND NOT _trace MATCHES "${TRACE_REGEX}")
  message(FATAL_ERROR "${TRACE} does not match ${TRACE_REGEX}:\n${_trace}")
endif()
message(STATUS "trace: ${_events} events, ${_ops} ops, ${_starts} flows; svg: ${_boxes} op boxes")
