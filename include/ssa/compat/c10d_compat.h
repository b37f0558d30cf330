// LibTorch 1.13 versus 2.x for the c10d collectives (dist/ only; kept out of torch_compat.h so
// that the precompiled header does not pull in c10d and Gloo). In 1.13 the Gloo and NCCL
// process groups derive from c10d::ProcessGroup; from 2.0 on they are c10d::Backend objects
// that a ProcessGroup dispatches to. Both bases offer the same collective calls (allreduce,
// allgather, reduce_scatter, barrier with the *Options structs) returning c10d::Work, so the
// project talks to the backend object directly.
#pragma once

#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/csrc/distributed/c10d/Work.hpp>

#include "ssa/compat/torch_compat.h"

#if SSA_TORCH_AT_LEAST(2, 0)
#include <torch/csrc/distributed/c10d/Backend.hpp>
#else
#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>
#endif

// The PyTorch wheels ship c10d's headers but not Gloo's, which ProcessGroupGloo.hpp includes:
// their builds (the CUDA ones) then offer NCCL only; Debian's has both.
#if __has_include(<gloo/algorithm.h>)
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#define SSA_HAS_GLOO 1
#else
#define SSA_HAS_GLOO 0
#endif

namespace ssa::compat {

#if SSA_TORCH_AT_LEAST(2, 0)
using CollectiveBackend = c10d::Backend;
#else
using CollectiveBackend = c10d::ProcessGroup;
#endif

// The first line of an exception message (c10::Error appends a C++ stack trace).
inline std::string first_line(const std::string& message) { return message.substr(0, message.find('\n')); }

}  // namespace ssa::compat
