# Included by the packaging consumers: checks that bringing Stretto in (find_package,
# add_subdirectory, FetchContent) leaves the consumer's compiler settings as they were.
#
#   stretto_scope_snapshot()          before: records every variable named CMAKE_CXX_* (normal or
#                                     cache) and whether CMAKE_CXX_EXTENSIONS is in the cache
#   stretto_scope_check(<what>)       after: fails the configure naming each one that changed
macro(stretto_scope_snapshot)
  get_cmake_property(_stretto_scope_vars VARIABLES)
  list(FILTER _stretto_scope_vars INCLUDE REGEX "^CMAKE_CXX_")
  foreach(_v IN LISTS _stretto_scope_vars)
    set(_stretto_scope_before_${_v} "${${_v}}")
  endforeach()
  set(_stretto_scope_names "${_stretto_scope_vars}")
  set(_stretto_scope_cached_extensions "$CACHE{CMAKE_CXX_EXTENSIONS}")
endmacro()

macro(stretto_scope_check what)
  get_cmake_property(_stretto_scope_vars VARIABLES)
  list(FILTER _stretto_scope_vars INCLUDE REGEX "^CMAKE_CXX_")
  set(_stretto_scope_changed "")
  foreach(_v IN LISTS _stretto_scope_vars)
    if(NOT "${_v}" IN_LIST _stretto_scope_names)
      list(APPEND _stretto_scope_changed "${_v} is new ('${${_v}}')")
    elseif(NOT "${${_v}}" STREQUAL "${_stretto_scope_before_${_v}}")
      list(APPEND _stretto_scope_changed "${_v} was '${_stretto_scope_before_${_v}}', is '${${_v}}'")
    endif()
  endforeach()
  foreach(_v IN LISTS _stretto_scope_names)
    if(NOT "${_v}" IN_LIST _stretto_scope_vars)
      list(APPEND _stretto_scope_changed "${_v} was removed")
    endif()
  endforeach()
  if(NOT "$CACHE{CMAKE_CXX_EXTENSIONS}" STREQUAL "${_stretto_scope_cached_extensions}")
    list(APPEND _stretto_scope_changed "the cache's CMAKE_CXX_EXTENSIONS was '${_stretto_scope_cached_extensions}', is '$CACHE{CMAKE_CXX_EXTENSIONS}'")
  endif()
  if(_stretto_scope_changed)
    string(JOIN "\n  " _stretto_scope_changed ${_stretto_scope_changed})
    message(FATAL_ERROR "${what} changed the consumer's scope:\n  ${_stretto_scope_changed}")
  endif()
  message(STATUS "${what} left the consumer's CMAKE_CXX_* as they were: CMAKE_CXX_STANDARD '${CMAKE_CXX_STANDARD}', "
                 "CMAKE_CXX_EXTENSIONS '${CMAKE_CXX_EXTENSIONS}', CMAKE_CXX_FLAGS '${CMAKE_CXX_FLAGS}'")
endmacro()
