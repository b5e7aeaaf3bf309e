// A model with several tensors per stage boundary and a typical mistake: a boundary element that
// is not a Kokkos::View (a raw pointer to the mask instead of a view of it).
//
// The boundary's check names the broken rule, the element's index and type, and a valid
// declaration. With STRETTO_COMPILE_FAIL_TWIN defined the element is a view (the twin, which
// must compile). The diagnostic must match:
//
// expected-error: check_element<1, stretto::kokkos::no_gradient<int\*> >.*element K is not a boundary tensor; every element must be a Kokkos::View
// links: stretto::kokkos
#include "stage_model_common.hpp"

#include <stretto/kokkos/boundary.hpp>

using hidden = stretto::kokkos::matrix<double, Kokkos::HostSpace>;
#ifdef STRETTO_COMPILE_FAIL_TWIN
using mask = Kokkos::View<int*, Kokkos::LayoutRight, Kokkos::HostSpace>;
#else
using mask = int*;
#endif

struct model {
  using boundary_type = stretto::kokkos::boundary<hidden, stretto::kokkos::no_gradient<mask>>;
  std::int64_t microbatch_rows(std::int32_t) const { return 1; }
  boundary_type::shape_type output_shape(std::int32_t) const { return {{1}, {}}; }
  boundary_type input(std::int32_t) const { return boundary_type(); }
  void forward(std::int32_t, std::int32_t, const boundary_type&, const boundary_type&) {}
  double loss(std::int32_t, const boundary_type&, const boundary_type&) { return 0.0; }
  void backward_input(std::int32_t, std::int32_t, const boundary_type&, const boundary_type&) {}
  void backward_weight(std::int32_t, std::int32_t) {}
};

double step(model& m) { return stretto::testing::run_one_step(m); }
