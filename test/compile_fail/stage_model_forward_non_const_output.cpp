// A stage model with a typical mistake: forward takes its output as a non-const matrix_type&.
//
// Constructing an executor for it fails, and the compiler's diagnostic names the part of
// stretto::kokkos::stage_model that is missed and the expression. With STRETTO_COMPILE_FAIL_TWIN
// defined the model is correct (the twin, which must compile). The diagnostic must match:
//
// expected-error: satisfaction of [^ ]*stage_model_forward<M>.*required expression [^ ]*model.forward\(s, mb, x, y\)[^ ]* is invalid.*y is const& too
// links: stretto::kokkos
#include "stage_model_common.hpp"

struct model {
  using matrix_type = stretto::kokkos::matrix<double>;
  matrix_type input_{"input", 1, 1};
  std::int64_t input_features(std::int32_t) const { return 1; }
  std::int64_t output_features(std::int32_t) const { return 1; }
  std::int64_t microbatch_rows(std::int32_t) const { return 1; }
  matrix_type input(std::int32_t) const { return input_; }
#ifdef STRETTO_COMPILE_FAIL_TWIN
  void forward(std::int32_t, std::int32_t, const matrix_type&, const matrix_type&) {}
#else
  void forward(std::int32_t, std::int32_t, const matrix_type&, matrix_type&) {}
#endif
  double loss(std::int32_t, const matrix_type&, const matrix_type&) { return 0.0; }
  void backward_input(std::int32_t, std::int32_t, const matrix_type&, const matrix_type&) {}
  void backward_weight(std::int32_t, std::int32_t) {}
};

double step(model& m) { return stretto::testing::run_one_step(m); }
