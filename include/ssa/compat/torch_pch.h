// Precompiled header for every target that uses LibTorch: parsing <torch/torch.h> dominates
// compile time on small machines, so it is parsed once per target.
#pragma once
#include <torch/torch.h>

#include "ssa/compat/torch_compat.h"
