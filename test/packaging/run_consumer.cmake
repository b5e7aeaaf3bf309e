# Runs a packaging test that builds Stretto from source inside a consumer project
# (add_subdirectory, FetchContent); see CMakeLists.txt beside this file.
file(REMOVE_RECURSE ${WORK_DIR})
function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "packaging test: command failed (${rc}): ${ARGN}")
  endif()
endfunction()
run(${CMAKE_COMMAND} -S ${CONSUMER_SOURCE_DIR} -B ${WORK_DIR}/build -G ${GENERATOR}
    -DCMAKE_BUILD_TYPE=Release "-DSTRETTO_COMPONENTS=${COMPONENTS}"
    # where each kind of consumer finds the tree under test
    -DSTRETTO_SOURCE_DIR=${STRETTO_SOURCE_DIR} -DFETCHCONTENT_SOURCE_DIR_STRETTO=${STRETTO_SOURCE_DIR} --no-warn-unused-cli)
run(${CMAKE_COMMAND} --build ${WORK_DIR}/build --target consumer)
run(${WORK_DIR}/build/consumer)
