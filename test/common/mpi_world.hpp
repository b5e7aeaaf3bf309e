#pragma once
/**
@file
@brief The calling process's rank and the size of `MPI_COMM_WORLD`, for the MPI tests.
*/

#include <mpi.h>

inline int world_size() {
  int n = 0;
  MPI_Comm_size(MPI_COMM_WORLD, &n);
  return n;
}

inline int world_rank() {
  int r = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &r);
  return r;
}
