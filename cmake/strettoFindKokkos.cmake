# strettoFindKokkos.cmake -- make Kokkos::kokkos and Kokkos::kokkoskernels usable.
#
# Include this from the TOP-LEVEL CMakeLists.txt (imported targets are directory-scoped):
#
#   include(cmake/strettoFindKokkos.cmake)
#   if(STRETTO_KOKKOS_FOUND)
#     target_link_libraries(foo PRIVATE Kokkos::kokkos Kokkos::kokkoskernels)
#   endif()
#
# Result: STRETTO_KOKKOS_FOUND is TRUE when both targets exist and are usable, FALSE otherwise.
# Configure never fails because Kokkos is missing.
#
# Why this exists (Debian 12, Trilinos 13.2 / Kokkos 3.4.1, see docs/setup.md):
#  * KokkosConfig.cmake defines Kokkos::kokkos with INTERFACE_INCLUDE_DIRECTORIES=/usr/lib/include,
#    which does not exist, so generation fails. We replace it with the directory that holds
#    Kokkos_Core.hpp (/usr/include/trilinos).
#  * KokkosKernelsConfig.cmake defines only the plain imported target `trilinos_kokkoskernels`
#    (no include dirs); upstream's standalone install exports `Kokkos::kokkoskernels`. We create
#    Kokkos::kokkoskernels if the config did not.
#  * Without any config we build both targets by hand from /usr/include/trilinos and the
#    trilinos_kokkos* libraries.
# Include dirs stay on IMPORTED targets, so CMake passes them as -isystem: Kokkos' own warnings
# under -std=c++20 (-Wvolatile, ...) do not trip -Werror on our code.

include_guard(DIRECTORY)

set(STRETTO_KOKKOS_FOUND FALSE)

# Debian's config forces this (with a warning) unless it is already OFF.
set(CMAKE_CXX_EXTENSIONS OFF)

find_package(Kokkos CONFIG QUIET)
find_package(KokkosKernels CONFIG QUIET)

find_path(STRETTO_KOKKOS_INCLUDE_DIR Kokkos_Core.hpp
  HINTS ${Kokkos_INCLUDE_DIRS} PATH_SUFFIXES trilinos kokkos)
find_path(STRETTO_KOKKOSKERNELS_INCLUDE_DIR KokkosBlas3_gemm.hpp
  HINTS ${KokkosKernels_INCLUDE_DIRS} ${STRETTO_KOKKOS_INCLUDE_DIR} PATH_SUFFIXES trilinos kokkos)
mark_as_advanced(STRETTO_KOKKOS_INCLUDE_DIR STRETTO_KOKKOSKERNELS_INCLUDE_DIR)

# ---- Kokkos::kokkos ---------------------------------------------------------------------------
if(TARGET Kokkos::kokkos)
  # Keep the config's include dirs that exist; swap in the found header dir for the rest.
  # (A correct upstream install is left untouched.)
  get_target_property(_stretto_dirs Kokkos::kokkos INTERFACE_INCLUDE_DIRECTORIES)
  set(_stretto_good "")
  set(_stretto_bad FALSE)
  foreach(_d IN LISTS _stretto_dirs)
    if(EXISTS "${_d}")
      list(APPEND _stretto_good "${_d}")
    else()
      set(_stretto_bad TRUE)
    endif()
  endforeach()
  if((_stretto_bad OR NOT _stretto_dirs) AND STRETTO_KOKKOS_INCLUDE_DIR)
    list(APPEND _stretto_good "${STRETTO_KOKKOS_INCLUDE_DIR}")
    set_target_properties(Kokkos::kokkos PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "${_stretto_good}")
  endif()
  unset(_stretto_dirs)
  unset(_stretto_good)
  unset(_stretto_bad)
else()
  # No usable config: assemble the target from headers and Debian's library names.
  find_library(STRETTO_KOKKOSCORE_LIB trilinos_kokkoscore)
  find_library(STRETTO_KOKKOSCONTAINERS_LIB trilinos_kokkoscontainers)
  mark_as_advanced(STRETTO_KOKKOSCORE_LIB STRETTO_KOKKOSCONTAINERS_LIB)
  if(STRETTO_KOKKOS_INCLUDE_DIR AND STRETTO_KOKKOSCORE_LIB AND STRETTO_KOKKOSCONTAINERS_LIB)
    add_library(Kokkos::kokkos INTERFACE IMPORTED)
    set_target_properties(Kokkos::kokkos PROPERTIES
      INTERFACE_INCLUDE_DIRECTORIES "${STRETTO_KOKKOS_INCLUDE_DIR}"
      INTERFACE_LINK_LIBRARIES
        "${STRETTO_KOKKOSCONTAINERS_LIB};${STRETTO_KOKKOSCORE_LIB};${CMAKE_DL_LIBS}")
  endif()
endif()

# ---- Kokkos::kokkoskernels --------------------------------------------------------------------
if(TARGET Kokkos::kokkos AND NOT TARGET Kokkos::kokkoskernels)
  if(TARGET trilinos_kokkoskernels)
    set(_stretto_kk trilinos_kokkoskernels)   # Debian's config (brings BLAS/LAPACK along)
  else()
    find_library(STRETTO_KOKKOSKERNELS_LIB trilinos_kokkoskernels)
    mark_as_advanced(STRETTO_KOKKOSKERNELS_LIB)
    set(_stretto_kk "${STRETTO_KOKKOSKERNELS_LIB}")
  endif()
  if(_stretto_kk AND STRETTO_KOKKOSKERNELS_INCLUDE_DIR)
    add_library(Kokkos::kokkoskernels INTERFACE IMPORTED)
    set_target_properties(Kokkos::kokkoskernels PROPERTIES
      INTERFACE_INCLUDE_DIRECTORIES "${STRETTO_KOKKOSKERNELS_INCLUDE_DIR}"
      INTERFACE_LINK_LIBRARIES "${_stretto_kk};Kokkos::kokkos")
  endif()
  unset(_stretto_kk)
endif()

if(TARGET Kokkos::kokkos AND TARGET Kokkos::kokkoskernels AND STRETTO_KOKKOS_INCLUDE_DIR)
  set(STRETTO_KOKKOS_FOUND TRUE)
  message(STATUS "Stretto: Kokkos found (version '${Kokkos_VERSION}', headers ${STRETTO_KOKKOS_INCLUDE_DIR})")
else()
  message(STATUS "Stretto: Kokkos/Kokkos Kernels not found; Kokkos parts disabled")
endif()
