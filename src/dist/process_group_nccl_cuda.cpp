// The NCCL backend (CUDA builds only: the file name's _cuda suffix keeps it out of CPU builds).
#ifndef USE_C10D_NCCL
#define USE_C10D_NCCL
#endif
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>

#include "ssa/compat/c10d_compat.h"

namespace ssa::dist {

c10::intrusive_ptr<compat::CollectiveBackend> make_nccl_backend(const c10::intrusive_ptr<c10d::Store>& store,
                                                               int64_t rank, int64_t size,
                                                               std::chrono::milliseconds timeout) {
  auto options = c10d::ProcessGroupNCCL::Options::create();
  options->timeout = timeout;
  return c10::make_intrusive<c10d::ProcessGroupNCCL>(store, static_cast<int>(rank), static_cast<int>(size), options);
}

}  // namespace ssa::dist
