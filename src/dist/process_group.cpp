#include "ssa/dist/process_group.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <c10/core/impl/DeviceGuardImplInterface.h>

#include "ssa/compat/c10d_compat.h"
#include "ssa/util/error.h"

namespace ssa::dist {

#ifdef SSA_HAVE_CUDA_KERNELS
// process_group_nccl_cuda.cpp (CUDA builds only).
c10::intrusive_ptr<compat::CollectiveBackend> make_nccl_backend(const c10::intrusive_ptr<c10d::Store>& store,
                                                               int64_t rank, int64_t size,
                                                               std::chrono::milliseconds timeout);
#endif

#if SSA_HAS_GLOO
namespace {

c10::intrusive_ptr<compat::CollectiveBackend> make_gloo_backend(const c10::intrusive_ptr<c10d::Store>& store,
                                                                int64_t rank, int64_t size,
                                                                std::chrono::milliseconds timeout) {
  auto options = c10d::ProcessGroupGloo::Options::create(timeout);
  // Same choice as PyTorch: GLOO_SOCKET_IFNAME names the interface, else the host name's address.
  if (const char* ifname = std::getenv("GLOO_SOCKET_IFNAME")) {
    options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(ifname));
  } else {
    options->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
  }
  return c10::make_intrusive<c10d::ProcessGroupGloo>(store, static_cast<int>(rank), static_cast<int>(size), options);
}

}  // namespace
#endif

struct ProcessGroup::Impl {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<compat::CollectiveBackend> backend;
};

Collective::Collective(ProcessGroup* group, c10::intrusive_ptr<c10d::Work> work, std::string what,
                       std::function<void()> then)
    : group_(group), work_(std::move(work)), what_(std::move(what)), then_(std::move(then)) {}
Collective::Collective(Collective&&) noexcept = default;
Collective& Collective::operator=(Collective&&) noexcept = default;
Collective::~Collective() = default;

bool Collective::pending() const { return static_cast<bool>(work_); }

void Collective::wait() {
  if (!work_) return;
  group_->guarded(what_, [&] { work_->wait(); });
  work_.reset();
  if (then_) then_();
  then_ = nullptr;
}

std::string choose_backend(const config::DistConfig& config, torch::Device device) {
  const std::string backend = config.backend == "auto" ? (device.is_cuda() ? "nccl" : "gloo") : config.backend;
  if (backend == "nccl" && !device.is_cuda()) {
    throw ConfigError("config key 'dist.backend': nccl needs train.device cuda (use gloo on the CPU)");
  }
#ifndef SSA_HAVE_CUDA_KERNELS
  if (backend == "nccl") throw ConfigError("config key 'dist.backend': nccl needs a CUDA build of ssa");
#endif
#if !SSA_HAS_GLOO
  if (backend == "gloo") {
    throw ConfigError("config key 'dist.backend': this build has no Gloo (the PyTorch wheel ships no Gloo headers); "
                      "train on CUDA with nccl");
  }
#endif
  if (backend == "gloo" && config.reduce_dtype != "fp32") {
    throw ConfigError("config key 'dist.reduce_dtype': gloo reduces fp32 only; bf16 needs the nccl backend");
  }
  if (backend == "gloo" && device.is_cuda()) {
    throw ConfigError("config key 'dist.backend': gloo reduces CPU tensors; use nccl (or auto) with CUDA");
  }
  return backend;
}

ProcessGroup::ProcessGroup(const LaunchEnvironment& env, const config::DistConfig& config, torch::Device device)
    : rank_(env.rank),
      size_(env.world_size),
      backend_name_(choose_backend(config, device)),
      device_(device),
      watchdog_(env.rank, std::chrono::seconds(config.timeout_s)),
      impl_(std::make_unique<Impl>()) {
  const std::chrono::milliseconds timeout = std::chrono::seconds(config.timeout_s);
  if (device.is_cuda()) c10::impl::getDeviceGuardImpl(device.type())->setDevice(device);
  const std::string where = fmt::format("{}:{}", env.master_addr, env.master_port);
  guarded(fmt::format("rendezvous at {} ({} ranks)", where, size_), [&] {
    c10d::TCPStoreOptions options;
    options.port = static_cast<uint16_t>(env.master_port);
    options.isServer = env.rank == 0 && !env.agent_store;
    if (!env.agent_store) options.numWorkers = static_cast<std::size_t>(env.world_size);
    options.waitWorkers = !env.agent_store;
    options.timeout = timeout;
    auto tcp = c10::make_intrusive<c10d::TCPStore>(env.master_addr, options);
    // Under torchrun the agent's store also holds its own keys: ours go under a per-attempt prefix.
    impl_->store = env.agent_store ? c10::intrusive_ptr<c10d::Store>(c10::make_intrusive<c10d::PrefixStore>(
                                         fmt::format("/worker/attempt_{}", env.restart_count), tcp))
                                   : c10::intrusive_ptr<c10d::Store>(tcp);
    // The backends' own timeouts are twice our watchdog's limit, so that a hung peer is reported
    // by the watchdog, with its one-line error naming the wait and dist.timeout_s: with equal
    // limits Gloo's timeout can fire first on a loaded machine ("Application timeout caused pair
    // closure"), and NCCL's timeout path dumps debug state and can stall the exit. A peer that dies
    // still fails Gloo's collectives at once (its sockets close).
#if SSA_HAS_GLOO
    if (backend_name_ == "gloo") impl_->backend = make_gloo_backend(impl_->store, rank_, size_, 2 * timeout);
#endif
#ifdef SSA_HAVE_CUDA_KERNELS
    if (backend_name_ == "nccl") impl_->backend = make_nccl_backend(impl_->store, rank_, size_, 2 * timeout);
#endif
  });
  barrier("rendezvous");
}

ProcessGroup::~ProcessGroup() = default;

void ProcessGroup::guarded(const std::string& what, const std::function<void()>& wait) {
  FaultWatchdog::Guard guard(watchdog_, what);
  try {
    wait();
  } catch (const std::exception& e) {
    exit_peer_lost(rank_, fmt::format("{} failed, another rank died or broke off: {}", what,
                                      compat::first_line(e.what())));
  }
}

void ProcessGroup::launch(const std::string& what, const std::function<void()>& start) {
  try {
    start();
  } catch (const c10::Error& e) {
    throw std::runtime_error(fmt::format("rank {}: cannot start the {}: {}", rank_, what, e.what_without_backtrace()));
  }
}

Collective ProcessGroup::all_reduce(torch::Tensor tensor, const std::string& what, bool max) {
  std::vector<torch::Tensor> tensors{std::move(tensor)};
  c10d::AllreduceOptions options;
  options.reduceOp = max ? c10d::ReduceOp::MAX : c10d::ReduceOp::SUM;
  c10::intrusive_ptr<c10d::Work> work;
  launch(what, [&] { work = impl_->backend->allreduce(tensors, options); });
  return Collective(this, std::move(work), what);
}

Collective ProcessGroup::reduce_scatter(torch::Tensor output, torch::Tensor input, const std::string& what) {
  c10::intrusive_ptr<c10d::Work> work;
  if (backend_name_ == "gloo") {
    // Gloo has no reduce-scatter in LibTorch 1.13: all-reduce and keep this rank's chunk (the same
    // sums; Gloo serves CPU runs, where the extra traffic does not matter).
    std::vector<torch::Tensor> tensors{input};
    launch(what, [&] { work = impl_->backend->allreduce(tensors); });
    const int64_t chunk = output.numel();
    return Collective(this, std::move(work), what,
                      [output, input, chunk, rank = rank_]() mutable { output.copy_(input.narrow(0, rank * chunk, chunk)); });
  }
  launch(what, [&] { work = impl_->backend->_reduce_scatter_base(output, input); });
  return Collective(this, std::move(work), what);
}

Collective ProcessGroup::all_gather(torch::Tensor output, torch::Tensor input, const std::string& what) {
  c10::intrusive_ptr<c10d::Work> work;
  if (backend_name_ == "gloo") {
    std::vector<std::vector<torch::Tensor>> outputs{output.chunk(size_)};
    std::vector<torch::Tensor> inputs{input};
    launch(what, [&] { work = impl_->backend->allgather(outputs, inputs); });
  } else {
    launch(what, [&] { work = impl_->backend->_allgather_base(output, input); });
  }
  return Collective(this, std::move(work), what);
}

void ProcessGroup::barrier(const std::string& what) { sum({0.0}, what); }

std::vector<double> ProcessGroup::sum(const std::vector<double>& values, const std::string& what) {
  auto tensor = torch::tensor(values, torch::kFloat64).to(device_);
  std::vector<double> out;
  guarded(what, [&] {
    all_reduce(tensor, what).wait();
    auto host = tensor.cpu();
    out.assign(host.data_ptr<double>(), host.data_ptr<double>() + host.numel());
  });
  return out;
}

bool ProcessGroup::any(bool flag, const std::string& what) {
  auto tensor = torch::tensor({flag ? 1.0 : 0.0}, torch::kFloat64).to(device_);
  bool out = false;
  guarded(what, [&] {
    all_reduce(tensor, what, /*max=*/true).wait();
    out = tensor.cpu().item<double>() > 0;
  });
  return out;
}

}  // namespace ssa::dist
