# Checks that the README's code block after the line
#   <!-- snippet: examples/minimal/main.cpp -->
# equals, line for line, the region of EXAMPLE between "// [readme-begin]" and "// [readme-end]".
#   cmake -DREADME=<README.md> -DEXAMPLE=<main.cpp> -P check_readme_snippet.cmake
cmake_minimum_required(VERSION 3.24)
file(READ ${README} _readme)
file(READ ${EXAMPLE} _example)

string(FIND "${_example}" "// [readme-begin]\n" _begin)
string(FIND "${_example}" "// [readme-end]" _end)
if(_begin EQUAL -1 OR _end EQUAL -1 OR _end LESS _begin)
  message(FATAL_ERROR "${EXAMPLE}: no '// [readme-begin]' ... '// [readme-end]' region")
endif()
math(EXPR _begin "${_begin} + 18")
math(EXPR _length "${_end} - ${_begin}")
string(SUBSTRING "${_example}" ${_begin} ${_length} _region)

set(_marker "<!-- snippet: examples/minimal/main.cpp -->\n```cpp\n")
string(FIND "${_readme}" "${_marker}" _at)
if(_at EQUAL -1)
  message(FATAL_ERROR "${README}: no '<!-- snippet: examples/minimal/main.cpp -->' line followed by a ```cpp block")
endif()
string(LENGTH "${_marker}" _marker_length)
math(EXPR _at "${_at} + ${_marker_length}")
string(SUBSTRING "${_readme}" ${_at} -1 _rest)
string(FIND "${_rest}" "```\n" _close)
string(SUBSTRING "${_rest}" 0 ${_close} _block)

if(NOT _block STREQUAL _region)
  file(WRITE ${CMAKE_CURRENT_BINARY_DIR}/readme_block.txt "${_block}")
  file(WRITE ${CMAKE_CURRENT_BINARY_DIR}/example_region.txt "${_region}")
  message(FATAL_ERROR "the README's snippet differs from ${EXAMPLE}'s marked region; compare "
                      "${CMAKE_CURRENT_BINARY_DIR}/readme_block.txt and example_region.txt (e.g. with diff), "
                      "then copy the region into the README")
endif()
message(STATUS "the README's snippet equals ${EXAMPLE}'s marked region")
