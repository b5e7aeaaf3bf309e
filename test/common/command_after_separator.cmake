# For the check scripts run as `cmake -D... -P script.cmake -- <command> [<args>...]`:
# stretto_command_after_separator(<var>) sets <var> to the command and its arguments, everything
# after the first "--" (empty when there is none).
macro(stretto_command_after_separator _var)
  set(${_var})
  set(_stretto_after_separator FALSE)
  math(EXPR _stretto_last_argument "${CMAKE_ARGC} - 1")
  foreach(_stretto_i RANGE 0 ${_stretto_last_argument})
    if(_stretto_after_separator)
      list(APPEND ${_var} "${CMAKE_ARGV${_stretto_i}}")
    elseif(CMAKE_ARGV${_stretto_i} STREQUAL "--")
      set(_stretto_after_separator TRUE)
    endif()
  endforeach()
endmacro()
