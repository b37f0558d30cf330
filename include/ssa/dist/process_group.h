// The ranks of a data-parallel run and the collectives between them: a c10d TCPStore rendezvous
// at MASTER_ADDR:MASTER_PORT (hosted by rank 0, or the torchrun agent's store) and a c10d
// backend over it, NCCL for CUDA tensors and Gloo for CPU tensors. Collectives are
// asynchronous; wait() blocks under the fault watchdog and turns a communication failure (a
// rank that died closes its sockets) into exit_peer_lost's one-line message and exit code.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <torch/csrc/distributed/c10d/Work.hpp>

#include "ssa/compat/torch_compat.h"
#include "ssa/config/config.h"
#include "ssa/dist/fault_watchdog.h"
#include "ssa/dist/launch_environment.h"

namespace ssa::dist {

class ProcessGroup;

// One collective in flight. wait() completes it (also called by the destructor's owner).
class Collective {
 public:
  Collective() = default;
  Collective(ProcessGroup* group, c10::intrusive_ptr<c10d::Work> work, std::string what,
             std::function<void()> then = {});
  Collective(Collective&&) noexcept;
  Collective& operator=(Collective&&) noexcept;
  ~Collective();

  // Blocks until the result may be used (on CUDA: until the current stream is ordered after it).
  void wait();
  bool pending() const;

 private:
  ProcessGroup* group_ = nullptr;
  c10::intrusive_ptr<c10d::Work> work_;
  std::string what_;
  std::function<void()> then_;  // runs after the wait (the Gloo reduce-scatter keeps its chunk)
};

// "nccl" or "gloo" for dist.backend on `device` (auto: NCCL for CUDA, Gloo for CPU); ConfigError
// for a backend that does not fit the device, this build or dist.reduce_dtype.
std::string choose_backend(const config::DistConfig& config, torch::Device device);

class ProcessGroup {
 public:
  // Rendezvous and backend creation; UsageError naming the master address when the other ranks
  // do not arrive within dist.timeout_s.
  ProcessGroup(const LaunchEnvironment& env, const config::DistConfig& config, torch::Device device);
  ~ProcessGroup();
  ProcessGroup(const ProcessGroup&) = delete;
  ProcessGroup& operator=(const ProcessGroup&) = delete;

  int64_t rank() const { return rank_; }
  int64_t size() const { return size_; }
  const std::string& backend_name() const { return backend_name_; }
  torch::Device device() const { return device_; }
  FaultWatchdog& watchdog() { return watchdog_; }

  // In place: `tensor` becomes the element-wise sum (or max) over the ranks.
  Collective all_reduce(torch::Tensor tensor, const std::string& what, bool max = false);
  // `input` holds size() equal chunks; `output` (one chunk) becomes the sum of every rank's chunk
  // rank(). `input` may be overwritten.
  Collective reduce_scatter(torch::Tensor output, torch::Tensor input, const std::string& what);
  // `output` (size() chunks) receives every rank's `input` in rank order.
  Collective all_gather(torch::Tensor output, torch::Tensor input, const std::string& what);

  // Blocking helpers for a handful of values.
  void barrier(const std::string& what);
  std::vector<double> sum(const std::vector<double>& values, const std::string& what);
  bool any(bool flag, const std::string& what);

  // Runs `wait` under the watchdog; failures become exit_peer_lost.
  void guarded(const std::string& what, const std::function<void()>& wait);

 private:
  // Starts a collective; a refusal (an unsupported dtype, say) is a one-line runtime_error.
  void launch(const std::string& what, const std::function<void()>& start);

  struct Impl;
  int64_t rank_, size_;
  std::string backend_name_;
  torch::Device device_;
  FaultWatchdog watchdog_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace ssa::dist
