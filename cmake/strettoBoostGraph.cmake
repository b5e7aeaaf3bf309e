# stretto::boost_graph — the dependency graph of a schedule (stretto/graph/dependency_graph.hpp)
# on Boost.Graph. Header-only use: it links Boost::headers (Debian: libboost-graph-dev), never the
# compiled Boost::graph (GraphML/Graphviz readers). The core target stays standard-library only:
# dependency_graph.hpp is in this target's file set, not the core's.
find_package(Boost 1.74 CONFIG QUIET)
if(TARGET Boost::headers)
  add_library(stretto_boost_graph INTERFACE)
  add_library(stretto::boost_graph ALIAS stretto_boost_graph)
  set_target_properties(stretto_boost_graph PROPERTIES EXPORT_NAME boost_graph)
  target_sources(stretto_boost_graph INTERFACE FILE_SET HEADERS BASE_DIRS ${PROJECT_SOURCE_DIR}/include
    FILES ${PROJECT_SOURCE_DIR}/include/stretto/graph/dependency_graph.hpp)
  target_link_libraries(stretto_boost_graph INTERFACE stretto::stretto Boost::headers)
  target_compile_definitions(stretto_boost_graph INTERFACE STRETTO_HAS_BOOST_GRAPH=1)
  set(STRETTO_ENABLE_BOOST_GRAPH ON)
else()
  set(STRETTO_ENABLE_BOOST_GRAPH OFF)
endif()
message(STATUS "stretto: Boost.Graph dependency graph (stretto::boost_graph) ${STRETTO_ENABLE_BOOST_GRAPH}")
