#include "ssa/eval/attention_benchmark.h"

#include <ATen/Context.h>
#include <ATen/cuda/CUDAContext.h>
#include <ATen/cuda/CUDAEvent.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <ctime>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>

#include "ssa/attention/sparse_attention_cuda.h"
#include "ssa/io/atomic_file.h"
#include "ssa/util/error.h"

namespace ssa::eval {
namespace {

using Clock = std::function<void()>;

double median_ms(const Clock& run, int warmup, int repeats) {
  for (int i = 0; i < warmup; ++i) run();
  const auto stream = at::cuda::getCurrentCUDAStream();
  std::vector<double> times;
  for (int i = 0; i < repeats; ++i) {
    at::cuda::CUDAEvent start(cudaEventDefault), stop(cudaEventDefault);
    start.record(stream);
    run();
    stop.record(stream);
    stop.synchronize();
    times.push_back(start.elapsed_time(stop));
  }
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

// Peak bytes allocated by LibTorch's CUDA allocator during one run (live inputs included).
double peak_mib(const Clock& run) {
  const auto device = static_cast<c10::DeviceIndex>(at::cuda::current_device());
  torch::cuda::synchronize();
  c10::cuda::CUDACachingAllocator::resetPeakStats(device);
  run();
  torch::cuda::synchronize();
  const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(device);
  return static_cast<double>(stats.allocated_bytes[0].peak) / (1024.0 * 1024.0);  // [0]: all pools
}

// Sum over queries of the keys each attends to: causal (budget 0) or block-sparse.
double attended_keys(int64_t T, int64_t block_size, int64_t topk) {
  double sum = 0;
  const int64_t K = block_size > 0 ? std::min(topk, (T + block_size - 1) / block_size) : 0;
  for (int64_t t = 0; t < T; ++t) {
    if (block_size == 0) sum += static_cast<double>(t + 1);
    else sum += static_cast<double>(t % block_size + 1 + std::min(K - 1, t / block_size) * block_size);
  }
  return sum;
}

struct Tensors {
  torch::Tensor q, k, v, grad_out;
};

#if SSA_HAS_SDPA
// The SDPA backends LibTorch may pick; restored on scope exit.
class SdpBackendScope {
 public:
  enum class Only { kCudnn, kFlash, kDefault };
  explicit SdpBackendScope(Only only) {
    auto& ctx = at::globalContext();
    saved_ = {ctx.userEnabledFlashSDP(), ctx.userEnabledMemEfficientSDP(), ctx.userEnabledMathSDP(),
              ctx.userEnabledCuDNNSDP()};
    if (only == Only::kDefault) return;
    ctx.setSDPUseFlash(only == Only::kFlash);
    ctx.setSDPUseMemEfficient(false);
    ctx.setSDPUseMath(false);
    ctx.setSDPUseCuDNN(only == Only::kCudnn);
  }
  ~SdpBackendScope() {
    auto& ctx = at::globalContext();
    ctx.setSDPUseFlash(saved_[0]);
    ctx.setSDPUseMemEfficient(saved_[1]);
    ctx.setSDPUseMath(saved_[2]);
    ctx.setSDPUseCuDNN(saved_[3]);
  }
  SdpBackendScope(const SdpBackendScope&) = delete;
  SdpBackendScope& operator=(const SdpBackendScope&) = delete;

 private:
  std::array<bool, 4> saved_{};
};

std::string backend_name(int64_t choice) {
  // sdp::SDPBackend numbering (ATen/native/transformers/sdp_utils_cpp.h).
  switch (choice) {
    case 0: return "math";
    case 1: return "flash";
    case 2: return "efficient";
    case 3: return "cudnn";
    case 4: return "overrideable";
    default: return "none";
  }
}

torch::Tensor dense(const Tensors& x) {
  return at::scaled_dot_product_attention(x.q.transpose(1, 2), x.k.transpose(1, 2), x.v.transpose(1, 2), {}, 0.0,
                                          /*is_causal=*/true, std::nullopt, /*enable_gqa=*/true)
      .transpose(1, 2);
}

int64_t dense_choice(const Tensors& x) {
  return at::_fused_sdp_choice(x.q.transpose(1, 2), x.k.transpose(1, 2), x.v.transpose(1, 2), {}, 0.0, true,
                               std::nullopt, true);
}

#endif  // SSA_HAS_SDPA

struct Timing {
  double fwd_ms = 0, fwdbwd_ms = 0, peak_mib = 0;
};

Timing time_pair(const std::function<torch::Tensor()>& forward, const Tensors& x, int warmup, int repeats) {
  Timing t;
  t.fwd_ms = median_ms(
      [&] {
        torch::NoGradGuard no_grad;
        forward();
      },
      warmup, repeats);
  auto step = [&] {
    auto out = forward();
    torch::autograd::grad({out}, {x.q, x.k, x.v}, {x.grad_out});
  };
  t.fwdbwd_ms = median_ms(step, warmup, repeats);
  t.peak_mib = peak_mib(step);
  return t;
}

std::string now_utc() {
  const std::time_t now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm tm{};
  gmtime_r(&now, &tm);
  char buffer[32];
  std::strftime(buffer, sizeof(buffer), "%Y-%m-%d %H:%M UTC", &tm);
  return buffer;
}

}  // namespace

void run_attention_benchmark(const AttentionBenchmarkOptions& o) {
  if (!torch::cuda::is_available()) throw UsageError("ssa bench attention needs a CUDA device");
  const auto* props = at::cuda::getCurrentDeviceProperties();
  nlohmann::json report;
  report["date"] = now_utc();
  report["device"] = props->name;
  report["torch"] = compat::torch_version();
  report["cudnn"] = at::detail::getCUDAHooks().versionCuDNN();
  report["command"] = o.command;
  report["warmup"] = o.warmup;
  report["repeats"] = o.repeats;
  report["selection"] = o.selection;
  nlohmann::json rows = nlohmann::json::array();

  fmt::print("# ssa bench attention: {} ({}), torch {}, bf16, causal, {} tokens per step, median of {}\n\n",
             props->name, report["date"].get<std::string>(), compat::torch_version(), o.tokens, o.repeats);
  fmt::print(
      "| T | B | heads q/kv | kernel | budget | fwd ms | fwd+bwd ms | routing % | useful TFLOP/s fwd / f+b | "
      "speedup vs cuDNN fwd / f+b | peak MiB | attention fwd ms, query- / key-major | attention bwd ms, fused / "
      "split |\n");
  fmt::print("|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
  const auto options = torch::TensorOptions().dtype(torch::kBFloat16).device(torch::kCUDA);
  const attention::Selection selection = attention::parse_selection(o.selection);

  for (const int64_t kv_heads : o.kv_heads) {
    for (const int64_t T : o.lengths) {
      const int64_t B = std::max<int64_t>(1, o.tokens / T);
      const int64_t Hq = o.q_heads, D = o.head_dim;
      torch::manual_seed(1234 + T);
      Tensors x;
      x.q = torch::randn({B, T, Hq, D}, options).requires_grad_(true);
      x.k = torch::randn({B, T, kv_heads, D}, options).requires_grad_(true);
      x.v = torch::randn({B, T, kv_heads, D}, options).requires_grad_(true);
      x.grad_out = torch::randn({B, T, Hq, D}, options);
      const double flop_unit = 4.0 * static_cast<double>(B * Hq * D);  // x keys = forward FLOPs
      const std::string heads = fmt::format("{}/{}", Hq, kv_heads);
      auto row_base = [&] {
        nlohmann::json r;
        r["T"] = T;
        r["batch"] = B;
        r["q_heads"] = Hq;
        r["kv_heads"] = kv_heads;
        r["head_dim"] = D;
        return r;
      };

      std::optional<Timing> cudnn;
#if SSA_HAS_SDPA
      if (o.dense) {
        std::string default_backend;
        {
          const SdpBackendScope scope(SdpBackendScope::Only::kDefault);
          default_backend = backend_name(dense_choice(x));
        }
        const double dense_flops = flop_unit * attended_keys(T, 0, 0);
        for (const auto only : {SdpBackendScope::Only::kCudnn, SdpBackendScope::Only::kFlash}) {
          const SdpBackendScope scope(only);
          const std::string backend = backend_name(dense_choice(x));
          const std::string kernel = only == SdpBackendScope::Only::kCudnn ? "cuDNN" : "FlashAttention-2";
          nlohmann::json r = row_base();
          r["kernel"] = kernel;
          r["sdpa_backend"] = backend;
          r["sdpa_default_backend"] = default_backend;
          if (backend == "none") {
            r["error"] = "SDPA has no kernel for this shape";
            fmt::print("| {} | {} | {} | {} | dense | n/a | n/a | | | | | | |\n", T, B, heads, kernel);
            rows.push_back(r);
            continue;
          }
          const Timing t = time_pair([&] { return dense(x); }, x, o.warmup, o.repeats);
          if (only == SdpBackendScope::Only::kCudnn) cudnn = t;
          r["fwd_ms"] = t.fwd_ms;
          r["fwdbwd_ms"] = t.fwdbwd_ms;
          r["tflops_fwd"] = dense_flops / (t.fwd_ms * 1e9);
          r["tflops_fwdbwd"] = 3.5 * dense_flops / (t.fwdbwd_ms * 1e9);
          r["peak_mib"] = t.peak_mib;
          rows.push_back(r);
          fmt::print("| {} | {} | {} | {} ({}) | dense | {:.3f} | {:.3f} | | {:.0f} / {:.0f} | {} | {:.0f} | | |\n", T, B,
                     heads, kernel, backend, t.fwd_ms, t.fwdbwd_ms, r["tflops_fwd"].get<double>(),
                     r["tflops_fwdbwd"].get<double>(),
                     cudnn && only != SdpBackendScope::Only::kCudnn
                         ? fmt::format("{:.2f} / {:.2f}", cudnn->fwd_ms / t.fwd_ms, cudnn->fwdbwd_ms / t.fwdbwd_ms)
                         : std::string("1.00 / 1.00"),
                     t.peak_mib);
        }
      }
#else
      if (o.dense) fmt::print("| {} | {} | {} | dense | | needs LibTorch >= 2.5 | | | | | | | |\n", T, B, heads);
#endif

      for (size_t budget = 0; budget < o.block_sizes.size(); ++budget) {
        const attention::SparseSpec spec{o.block_sizes[budget], o.topks[budget], selection};
        nlohmann::json r = row_base();
        r["kernel"] = "ssa sparse";
        r["block_size"] = spec.block_size;
        r["topk"] = spec.topk;
        const std::string budget_name = fmt::format("{}x{}", spec.block_size, spec.topk);
        if (!attention::sparse_attention_cuda_supports(x.q, x.k, spec)) {
          r["error"] = "unsupported by the kernels";
          rows.push_back(r);
          fmt::print("| {} | {} | {} | ours | {} | unsupported | | | | | | | |\n", T, B, heads, budget_name);
          continue;
        }
        const double routing_ms = median_ms(
            [&] { attention::select_blocks_cuda(x.q.detach(), x.k.detach(), spec); }, o.warmup, o.repeats);
        // The attention forward alone under each plan, for the plan choice.
        const auto selected = attention::select_blocks_cuda(x.q.detach(), x.k.detach(), spec);
        auto plan_ms = [&](attention::SparseForwardPlan plan) {
          return median_ms(
              [&] { attention::sparse_attention_cuda_forward(x.q.detach(), x.k.detach(), x.v.detach(), spec, selected, plan); },
              o.warmup, o.repeats);
        };
        const double query_major_ms = plan_ms(attention::SparseForwardPlan::kQueryMajor);
        const double key_major_ms = plan_ms(attention::SparseForwardPlan::kKeyMajor);
        // The backward alone under each plan, from the forward's output (freed before the peak
        // memory measurement below).
        double fused_backward_ms = 0, split_backward_ms = 0;
        {
          const auto [out, lse] =
              attention::sparse_attention_cuda_forward(x.q.detach(), x.k.detach(), x.v.detach(), spec, selected);
          auto backward_ms = [&, &out = out, &lse = lse](attention::SparseBackwardPlan plan) {
            return median_ms(
                [&] {
                  attention::sparse_attention_cuda_backward(x.q.detach(), x.k.detach(), x.v.detach(), out, lse,
                                                            x.grad_out, spec, selected, plan);
                },
                o.warmup, o.repeats);
          };
          fused_backward_ms = backward_ms(attention::SparseBackwardPlan::kFused);
          split_backward_ms = backward_ms(attention::SparseBackwardPlan::kSplit);
        }
        const Timing t = time_pair(
            [&] { return attention::sparse_attention_cuda(x.q, x.k, x.v, spec, attention::select_blocks_cuda(x.q, x.k, spec)); },
            x, o.warmup, o.repeats);
        const double flops = flop_unit * attended_keys(T, spec.block_size, spec.topk);
        r["routing_ms"] = routing_ms;
        r["attention_fwd_query_major_ms"] = query_major_ms;
        r["attention_fwd_key_major_ms"] = key_major_ms;
        r["attention_bwd_fused_ms"] = fused_backward_ms;
        r["attention_bwd_split_ms"] = split_backward_ms;
        r["fwd_ms"] = t.fwd_ms;
        r["fwdbwd_ms"] = t.fwdbwd_ms;
        r["routing_share"] = routing_ms / t.fwdbwd_ms;
        r["useful_tflops_fwd"] = flops / (t.fwd_ms * 1e9);
        r["useful_tflops_fwdbwd"] = 3.5 * flops / (t.fwdbwd_ms * 1e9);
        r["peak_mib"] = t.peak_mib;
        std::string speedup;
        if (cudnn) {
          r["speedup_fwd"] = cudnn->fwd_ms / t.fwd_ms;
          r["speedup_fwdbwd"] = cudnn->fwdbwd_ms / t.fwdbwd_ms;
          r["peak_vs_cudnn"] = t.peak_mib / cudnn->peak_mib;
          speedup = fmt::format("{:.2f} / {:.2f}", r["speedup_fwd"].get<double>(), r["speedup_fwdbwd"].get<double>());
        }
        rows.push_back(r);
        fmt::print(
            "| {} | {} | {} | ours | {} | {:.3f} | {:.3f} | {:.0f} | {:.0f} / {:.0f} | {} | {:.0f} | {:.3f} / {:.3f} | "
            "{:.3f} / {:.3f} |\n",
            T, B, heads, budget_name, t.fwd_ms, t.fwdbwd_ms, 100.0 * routing_ms / t.fwdbwd_ms,
            r["useful_tflops_fwd"].get<double>(), r["useful_tflops_fwdbwd"].get<double>(), speedup, t.peak_mib,
            query_major_ms, key_major_ms, fused_backward_ms, split_backward_ms);
      }
      std::fflush(stdout);
    }
  }
  report["rows"] = rows;
  if (!o.out.empty()) io::write_file_atomic(o.out, report.dump(2) + "\n");
}

}  // namespace ssa::eval
