# Install rules and the CMake package: find_package(stretto [COMPONENTS mpi kokkos]).
# Install components: stretto_development (headers and the CMake package; needs no build) and
# stretto_tools (stretto-plan, installed when it was built), e.g.
#   cmake --install build --prefix /opt/stretto --component stretto_development
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(_targets stretto)
if(STRETTO_ENABLE_MPI)
  list(APPEND _targets stretto_mpi)
endif()
if(STRETTO_ENABLE_KOKKOS)
  list(APPEND _targets stretto_kokkos)
endif()
if(STRETTO_ENABLE_CBC)
  list(APPEND _targets stretto_cbc)
endif()
if(STRETTO_ENABLE_MPI AND STRETTO_ENABLE_KOKKOS)
  list(APPEND _targets stretto_training)
endif()
if(STRETTO_ENABLE_BOOST_GRAPH)
  list(APPEND _targets stretto_boost_graph)
endif()

install(TARGETS ${_targets} EXPORT strettoTargets FILE_SET HEADERS COMPONENT stretto_development)
set(_cmakedir ${CMAKE_INSTALL_LIBDIR}/cmake/stretto)
install(EXPORT strettoTargets NAMESPACE stretto:: DESTINATION ${_cmakedir} COMPONENT stretto_development)
export(EXPORT strettoTargets NAMESPACE stretto:: FILE ${PROJECT_BINARY_DIR}/strettoTargets.cmake)

configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/strettoConfig.cmake.in
  ${PROJECT_BINARY_DIR}/strettoConfig.cmake INSTALL_DESTINATION ${_cmakedir})
write_basic_package_version_file(${PROJECT_BINARY_DIR}/strettoConfigVersion.cmake
  COMPATIBILITY SameMinorVersion ARCH_INDEPENDENT)
install(FILES ${PROJECT_BINARY_DIR}/strettoConfig.cmake ${PROJECT_BINARY_DIR}/strettoConfigVersion.cmake
  ${PROJECT_SOURCE_DIR}/cmake/strettoFindKokkos.cmake ${PROJECT_SOURCE_DIR}/cmake/strettoFindCbc.cmake
  DESTINATION ${_cmakedir} COMPONENT stretto_development)
