# Included by the add_subdirectory and FetchContent consumers: Stretto as a subproject defines
# its library targets and none of its tests, tools or examples (their options default to OFF
# when Stretto is not the top-level project).
foreach(_t IN ITEMS stretto-plan stretto.example.fashion_mnist stretto.bench.emulated_pipeline)
  if(TARGET ${_t})
    message(FATAL_ERROR "Stretto as a subproject defined '${_t}': only the library targets were expected")
  endif()
endforeach()
foreach(_t IN ITEMS stretto::stretto)
  if(NOT TARGET ${_t})
    message(FATAL_ERROR "Stretto as a subproject did not define '${_t}'")
  endif()
endforeach()
