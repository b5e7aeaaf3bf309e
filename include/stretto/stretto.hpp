#pragma once
/**
@file
@brief Umbrella header: everything in Stretto that needs no backend (core IR, policies,
validation, compile-time schedules, lowering, simulator, exporters). The Boost.Graph dependency
graph is separate: `stretto/graph/dependency_graph.hpp` (target `stretto::boost_graph`).
*/

#include "compile_time/static_schedule.hpp"
#include "compile_time/static_validate.hpp"
#include "core/concepts.hpp"
#include "core/dependencies.hpp"
#include "core/errors.hpp"
#include "core/op.hpp"
#include "core/schedule.hpp"
#include "core/shape.hpp"
#include "graph/lowering.hpp"
#include "validate/validate.hpp"
#include "policies/gpipe.hpp"
#include "policies/one_f_one_b.hpp"
#include "policies/registry.hpp"
#include "policies/zero_bubble.hpp"
#include "plan/auto_schedule.hpp"
#include "sim/cost_model.hpp"
#include "sim/profile.hpp"
#include "sim/runtime_memory.hpp"
#include "plan/refine.hpp"
#include "sim/simulator.hpp"
#include "sim/timeline.hpp"
#include "core/transport.hpp"
#include "plan/auto_schedule_v.hpp"
#include "partition.hpp"
