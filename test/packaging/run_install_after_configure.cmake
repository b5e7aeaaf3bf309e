# Packaging test: a plain configure of a fresh build tree (default options), then `cmake
# --install` with nothing built. The library is headers only, so this installs the headers and
# the CMake package; stretto-plan, not built, is skipped (it installs once built).
file(REMOVE_RECURSE ${WORK_DIR})
set(prefix ${WORK_DIR}/prefix)
function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "packaging test: command failed (${rc}): ${ARGN}")
  endif()
endfunction()
run(${CMAKE_COMMAND} -S ${STRETTO_SOURCE_DIR} -B ${WORK_DIR}/build -G ${GENERATOR})
run(${CMAKE_COMMAND} --install ${WORK_DIR}/build --prefix ${prefix})
foreach(f IN ITEMS include/stretto/stretto.hpp lib/cmake/stretto/strettoConfig.cmake
                   lib/cmake/stretto/strettoConfigVersion.cmake lib/cmake/stretto/strettoTargets.cmake)
  if(NOT EXISTS ${prefix}/${f})
    message(FATAL_ERROR "packaging test: ${prefix}/${f} was not installed")
  endif()
endforeach()
if(EXISTS ${prefix}/bin/stretto-plan)
  message(FATAL_ERROR "packaging test: ${prefix}/bin/stretto-plan installed although it was never built")
endif()
message(STATUS "packaging test: installed the library after configuring only; stretto-plan skipped")
