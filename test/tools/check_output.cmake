# Runs one command and checks its exit status and output.
#
#   cmake -DEXPECT_EXIT=<status>
#         [-DEXPECT_STDOUT=<regex>] [-DEXPECT_STDERR=<regex>]
#         [-DEXPECT_ONE_ERROR_LINE=ON]    stderr is exactly one line and stdout is empty
#         [-DSTDOUT_FILE=<path>]          stdout goes to this file (e.g. /dev/full) instead
#         -P check_output.cmake -- <command> [<args>...]
#
# Regexes are CMake regexes matched anywhere in the text (use ^ and $ to anchor). Neither a regex
# nor an argument of the command can contain ";", which CMake would split into a list.
cmake_minimum_required(VERSION 3.24)

if(NOT DEFINED EXPECT_EXIT)
  message(FATAL_ERROR "check_output.cmake: pass -DEXPECT_EXIT=<status>")
endif()

include(${CMAKE_CURRENT_LIST_DIR}/../common/command_after_separator.cmake)
stretto_command_after_separator(_command)
if(NOT _command)
  message(FATAL_ERROR "check_output.cmake: give the command after '--'")
endif()

if(DEFINED STDOUT_FILE)
  execute_process(COMMAND ${_command} RESULT_VARIABLE _status OUTPUT_FILE "${STDOUT_FILE}" ERROR_VARIABLE _stderr)
  set(_stdout "")
else()
  execute_process(COMMAND ${_command} RESULT_VARIABLE _status OUTPUT_VARIABLE _stdout ERROR_VARIABLE _stderr)
endif()
string(JOIN " " _shown ${_command})
set(_report "command: ${_shown}\nexit status: ${_status}\nstdout:\n${_stdout}\nstderr:\n${_stderr}")

set(_failures)
if(NOT _status STREQUAL "${EXPECT_EXIT}")
  list(APPEND _failures "exit status ${_status}, expected ${EXPECT_EXIT}")
endif()
if(DEFINED EXPECT_STDOUT AND NOT _stdout MATCHES "${EXPECT_STDOUT}")
  list(APPEND _failures "stdout does not match '${EXPECT_STDOUT}'")
endif()
if(DEFINED EXPECT_STDERR AND NOT _stderr MATCHES "${EXPECT_STDERR}")
  list(APPEND _failures "stderr does not match '${EXPECT_STDERR}'")
endif()
if(EXPECT_ONE_ERROR_LINE)
  if(NOT _stdout STREQUAL "")
    list(APPEND _failures "stdout is not empty")
  endif()
  string(REGEX MATCHALL "\n" _newlines "${_stderr}")
  list(LENGTH _newlines _lines)
  if(NOT _lines EQUAL 1 OR NOT _stderr MATCHES "\n$")
    list(APPEND _failures "stderr is not exactly one line (${_lines} newlines)")
  endif()
endif()

if(_failures)
  string(JOIN "\n  " _why ${_failures})
  message(FATAL_ERROR "check failed:\n  ${_why}\n${_report}")
endif()
message(STATUS "check passed\n${_report}")
