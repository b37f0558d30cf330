#include "ssa/eval/step_benchmark.h"

#include <ATen/CPUGeneratorImpl.h>
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <functional>
#include <numeric>
#include <nlohmann/json.hpp>

#include "ssa/attention/alignment_loss.h"
#include "ssa/attention/document_mask.h"
#include "ssa/attention/full_attention.h"
#include "ssa/attention/sparse_attention.h"
#include "ssa/model/llama.h"
#include "ssa/train/device_choice.h"
#include "ssa/train/device_info.h"
#include "ssa/train/linear_cross_entropy.h"
#include "ssa/train/model_flops.h"
#include "ssa/train/train_forward.h"
#include "ssa/train/train_step.h"
#include "ssa/util/error.h"

namespace ssa::eval {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

std::string utc_now() {
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char text[32];
  std::strftime(text, sizeof(text), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return text;
}

// Median wall time of `repeats` runs of `run` after `warmup` untimed ones (at least one, which
// keeps one-time setup such as library handles and autotuning out), the device drained before
// and after each timed run.
double median_seconds(torch::Device device, int warmup, int repeats, const std::function<void()>& run) {
  for (int i = 0; i < std::max(1, warmup); ++i) run();
  std::vector<double> times;
  for (int i = 0; i < repeats; ++i) {
    train::synchronize(device);
    const auto start = Clock::now();
    run();
    train::synchronize(device);
    times.push_back(seconds_since(start));
  }
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

struct ForwardBackward {
  double forward_backward = 0;  // forward with autograd, then backward
  double recomputed = 0;        // the forward again, without autograd, in a checkpointed layer's backward
};

// What the benchmark runs with, shared by the training steps and the isolated measurements.
struct Setup {
  config::Config config;  // train.seq_len and train.micro_batch_size as benchmarked
  torch::Device device = torch::kCPU;
  torch::ScalarType dtype = torch::kFloat32;
  int warmup = 0;
  int repeats = 1;
  torch::Tensor positions;  // int64 [B, T] of every micro-batch, on the device
};

// The attention op of one layer for `method` on random post-RoPE q, k, v of the step's shapes.
ForwardBackward time_attention(const Setup& s, const std::string& method) {
  const auto& m = s.config.model;
  const auto& a = s.config.attention;
  const int64_t B = s.config.train.micro_batch_size, T = s.config.train.seq_len;
  const auto options = torch::TensorOptions().dtype(s.dtype).device(s.device);
  const auto q = torch::randn({B, T, m.num_heads, m.head_dim}, options).requires_grad_();
  const auto k = torch::randn({B, T, m.num_kv_heads, m.head_dim}, options).requires_grad_();
  const auto v = torch::randn({B, T, m.num_kv_heads, m.head_dim}, options).requires_grad_();
  const auto grad_output = torch::randn({B, T, m.num_heads, m.head_dim}, options);
  const auto sparse = attention::sparse_spec(a);
  const auto backend = attention::parse_backend(a.backend);
  const auto align = attention::align_spec(s.config.ssa.align);
  const auto starts = a.document_mask ? attention::document_starts(s.positions) : torch::Tensor();
  const auto documents = method != "sparse" ? attention::cuda_document_spans(starts) : attention::DocumentSpans{};

  // What a checkpointed layer keeps from its first run for its recomputation (model::KeptLayer):
  // the block selection, and with train.activation_checkpointing_keep_attention what the fused
  // attention ops keep; `kept` null: nothing.
  model::KeptLayer* kept = nullptr;

  // The op's outputs and the gradients the rest of the model sends back into them: the output
  // projection's into the main stream, 1 into the alignment loss (the other stream's only one).
  const auto forward = [&](std::vector<torch::Tensor>& outputs, std::vector<torch::Tensor>& grads) {
    torch::Tensor o_full, o_sparse;
    const bool keep_attention = kept != nullptr && kept->attention;
    if (method != "sparse") {
      o_full = attention::full_attention(q, k, v, backend, a.query_chunk, starts, documents,
                                         keep_attention ? &kept->full : nullptr);
    }
    if (method != "full") {
      torch::Tensor selection = kept != nullptr ? kept->selection : torch::Tensor();
      if (!selection.defined()) selection = attention::route_blocks(q, k, sparse, backend, a.query_chunk, starts);
      if (kept != nullptr) kept->selection = selection;
      o_sparse = attention::sparse_attention(q, k, v, sparse, backend, a.query_chunk, selection, starts,
                                             keep_attention ? &kept->sparse : nullptr);
    }
    outputs = {method == "sparse" ? o_sparse : o_full};
    grads = {grad_output};
    if (method == "ssa") {
      outputs.push_back(attention::alignment_loss(o_full, o_sparse, align, s.config.train.fused_kernels));
      grads.push_back(torch::ones_like(outputs.back()));
    }
  };
  ForwardBackward t;
  t.forward_backward = median_seconds(s.device, s.warmup, s.repeats, [&] {
    std::vector<torch::Tensor> outputs, grads;
    forward(outputs, grads);
    torch::autograd::grad(outputs, {q, k, v}, grads);
  });

  // The recomputation: a first run fills the slots; each timed run starts from what it kept.
  model::KeptLayer first_run;
  first_run.attention = s.config.train.activation_checkpointing_keep_attention;
  {
    torch::NoGradGuard no_grad;
    kept = &first_run;
    std::vector<torch::Tensor> outputs, grads;
    forward(outputs, grads);
  }
  model::KeptLayer slots;
  kept = &slots;
  t.recomputed = median_seconds(s.device, s.warmup, s.repeats, [&] {
    torch::NoGradGuard no_grad;
    slots = first_run;
    std::vector<torch::Tensor> outputs, grads;
    forward(outputs, grads);
  });
  return t;
}

// y [rows, out] = x [rows, in] W^T, as a bias-free Linear computes it.
struct Gemm {
  int64_t rows, in, out;
};

ForwardBackward time_gemms(const Setup& s, const std::vector<Gemm>& gemms) {
  const auto options = torch::TensorOptions().dtype(s.dtype).device(s.device);
  struct Operands {
    torch::Tensor x, w, dy;
  };
  std::vector<Operands> operands;
  for (const auto& g : gemms) {
    operands.push_back({torch::randn({g.rows, g.in}, options), torch::randn({g.out, g.in}, options),
                        torch::randn({g.rows, g.out}, options)});
  }
  const auto forward = [&] {
    for (const auto& o : operands) torch::matmul(o.x, o.w.t());
  };
  ForwardBackward t;
  t.recomputed = median_seconds(s.device, s.warmup, s.repeats, forward);
  t.forward_backward = median_seconds(s.device, s.warmup, s.repeats, [&] {
    forward();
    for (const auto& o : operands) {
      torch::matmul(o.dy, o.w);      // input gradient
      torch::matmul(o.dy.t(), o.x);  // weight gradient
    }
  });
  return t;
}

// Isolated attention and matmul time of one micro-batch's forward + backward, from per-layer
// measurements times the layers, with the recomputation of activation checkpointing.
struct IsolatedTimes {
  double attention = 0;
  double matmul = 0;
};

IsolatedTimes time_isolated(const Setup& s, const std::string& method) {
  const auto& m = s.config.model;
  const auto& t = s.config.train;
  const int64_t B = t.micro_batch_size, T = t.seq_len;
  int64_t checkpointed_layers = 0;
  for (int64_t l = 0; l < m.num_layers; ++l) {
    checkpointed_layers += train::layer_checkpointed(t.activation_checkpointing, t.activation_checkpointing_every, l);
  }
  const auto per_layer = [&](const ForwardBackward& layer_times) {
    return static_cast<double>(m.num_layers) * layer_times.forward_backward +
           static_cast<double>(checkpointed_layers) * layer_times.recomputed;
  };

  IsolatedTimes times;
  times.attention = per_layer(time_attention(s, method));

  const int64_t rows = B * T, q_width = m.num_heads * m.head_dim, kv_width = m.num_kv_heads * m.head_dim;
  std::vector<Gemm> layer{{rows, m.hidden_size, q_width},
                          {rows, m.hidden_size, kv_width},
                          {rows, m.hidden_size, kv_width},
                          {rows, q_width, m.hidden_size},
                          {rows, m.hidden_size, m.intermediate_size},
                          {rows, m.hidden_size, m.intermediate_size},
                          {rows, m.intermediate_size, m.hidden_size}};
  if (m.gate == "headwise") layer.push_back({rows, m.hidden_size, m.num_heads});
  if (m.gate == "elementwise") layer.push_back({rows, m.hidden_size, q_width});
  times.matmul = per_layer(time_gemms(s, layer));

  // The LM head runs with its loss in chunks (linear_cross_entropy.h): its three products per
  // chunk, never recomputed.
  const auto probe = torch::empty({0}, torch::TensorOptions().dtype(s.dtype).device(s.device));
  const bool kernel_loss = train::linear_cross_entropy_uses_kernel(probe, probe, t.fused_kernels);
  const int64_t chunk = std::min(kernel_loss ? train::kKernelLogitsChunk : train::kLogitsChunk, rows);
  const auto head = time_gemms(s, {{chunk, m.hidden_size, m.vocab_size}});
  times.matmul += static_cast<double>(rows) / static_cast<double>(chunk) * head.forward_backward;
  return times;
}

// Position ids of rows of `documents` documents each, cut at distinct random places (position ids
// restart at every document, as the loader's packed rows have them).
torch::Tensor synthetic_positions(int64_t B, int64_t T, int64_t documents, at::Generator& generator) {
  auto positions = torch::empty({B, T}, torch::kLong);
  auto p = positions.accessor<int64_t, 2>();
  for (int64_t b = 0; b < B; ++b) {
    const auto cuts = std::get<0>((torch::randperm(T - 1, generator, torch::kLong) + 1).narrow(0, 0, documents - 1).sort());
    const auto c = cuts.accessor<int64_t, 1>();
    int64_t start = 0, next = 0;
    for (int64_t t = 0; t < T; ++t) {
      if (next < cuts.size(0) && t == c[next]) start = c[next++];
      p[b][t] = t - start;
    }
  }
  return positions;
}

// `micro_batches` micro-batches of random token ids from `seed`, rows of `documents` documents.
std::vector<train::MicroBatch> synthetic_batches(const config::Config& c, int64_t micro_batches, int64_t documents,
                                                 torch::Device device) {
  const int64_t B = c.train.micro_batch_size, T = c.train.seq_len;
  auto generator = at::make_generator<at::CPUGeneratorImpl>(static_cast<uint64_t>(c.train.seed));
  const auto positions = synthetic_positions(B, T, documents, generator);
  std::vector<train::MicroBatch> batches;
  for (int64_t i = 0; i < micro_batches; ++i) {
    const auto rows = torch::randint(c.model.vocab_size, {B, T + 1}, generator, torch::kLong);
    train::MicroBatch batch{rows.narrow(1, 0, T).contiguous(), rows.narrow(1, 1, T).contiguous(), positions, B * T};
    batches.push_back(batch.to(device));
  }
  return batches;
}

struct TrainedSteps {
  double step_seconds = 0;
  double forward_backward_seconds = 0;
  std::vector<double> each_step_seconds, each_forward_backward_seconds;
  int64_t peak_memory_bytes = 0;
  double last_loss = 0;
  int64_t skipped_steps = 0;
  int64_t parameters = 0;
};

// Warm-up and timed steps of `method` from the initial weights of train.seed. Everything it
// allocates is freed on return.
TrainedSteps train_steps(const Setup& s, const std::vector<train::MicroBatch>& batches, int steps) {
  train::reset_peak_memory(s.device);
  model::LlamaForCausalLM model(s.config.model);
  model->initialize(static_cast<uint64_t>(s.config.train.seed));
  model->to(s.device);
  train::TrainStep stepper(s.config, model, s.dtype);
  TrainedSteps trained;
  for (const auto& p : model->parameters()) trained.parameters += p.numel();
  train::StepTotals totals{0, static_cast<int64_t>(batches.size())};
  for (const auto& b : batches) totals.target_tokens += b.target_tokens;

  uint64_t counter = 0;
  const auto step = [&] {
    const auto result = stepper.run(batches, totals, counter, s.config.optim.lr);
    counter += batches.size();
    return result;
  };
  for (int i = 0; i < s.warmup; ++i) step();
  for (int i = 0; i < steps; ++i) {
    train::synchronize(s.device);
    const auto start = Clock::now();
    const auto result = step();
    train::synchronize(s.device);
    trained.each_step_seconds.push_back(seconds_since(start));
    trained.each_forward_backward_seconds.push_back(result.forward_backward_seconds);
    trained.last_loss = result.loss;
    trained.skipped_steps += result.skipped ? 1 : 0;
  }
  const auto mean = [](const std::vector<double>& x) {
    return std::accumulate(x.begin(), x.end(), 0.0) / static_cast<double>(x.size());
  };
  trained.step_seconds = mean(trained.each_step_seconds);
  trained.forward_backward_seconds = mean(trained.each_forward_backward_seconds);
  trained.peak_memory_bytes = train::peak_memory_bytes(s.device);
  return trained;
}

// Attention and matmul as measured, elementwise the remainder of forward + backward.
StepTimeSplit split_step(const TrainedSteps& trained, const IsolatedTimes& isolated, bool& fitted) {
  StepTimeSplit split;
  split.optimizer = std::max(0.0, trained.step_seconds - trained.forward_backward_seconds);
  const double forward_backward = trained.step_seconds - split.optimizer;
  const double measured = isolated.attention + isolated.matmul;
  fitted = measured > forward_backward;
  const double scale = fitted ? forward_backward / measured : 1.0;
  split.attention = isolated.attention * scale;
  split.matmul = isolated.matmul * scale;
  split.elementwise = std::max(0.0, forward_backward - split.attention - split.matmul);
  return split;
}

std::string milliseconds_and_share(double seconds, double step) {
  return fmt::format("{:.1f} ({:.0f}%)", seconds * 1e3, step > 0 ? 100.0 * seconds / step : 0.0);
}

// (kernel set, method) pairs in the order they run: every method with the first kernel set, then
// with the next.
std::vector<std::pair<std::string, std::string>> method_runs(const StepBenchmarkOptions& options) {
  std::vector<std::pair<std::string, std::string>> runs;
  for (const auto& kernels : options.kernels) {
    for (const auto& method : options.methods) runs.emplace_back(kernels, method);
  }
  return runs;
}

std::string run_label(const MethodMeasurement& r) { return r.kernels == "fused" ? r.method : r.method + " (eager)"; }

}  // namespace

void check_step_benchmark_options(const StepBenchmarkOptions& o) {
  if (o.methods.empty()) throw UsageError("--method: name at least one of full, sparse, ssa");
  for (const auto& method : o.methods) {
    if (method != "full" && method != "sparse" && method != "ssa") {
      throw UsageError(fmt::format("--method: unknown method '{}' (use full, sparse or ssa)", method));
    }
  }
  if (o.kernels.empty()) throw UsageError("--kernels: name at least one of fused, eager");
  for (const auto& kernels : o.kernels) {
    if (kernels != "fused" && kernels != "eager") {
      throw UsageError(fmt::format("--kernels: unknown kernel set '{}' (use fused or eager)", kernels));
    }
  }
  if (o.warmup < 0 || o.steps < 1) throw UsageError("--warmup must be >= 0 and --steps >= 1");
  if (o.documents < 1) throw UsageError("--documents must be at least 1");
  if (o.seq_len < 0 || o.micro_batch_size < 0 || o.micro_batches < 1) {
    throw UsageError("--seq-len and --micro-batch-size must be positive, --micro-batches >= 1");
  }
}

StepBenchmarkReport run_step_benchmark(const config::Config& config, const StepBenchmarkOptions& options) {
  check_step_benchmark_options(options);
  Setup s;
  s.config = config;
  if (options.seq_len > 0) s.config.train.seq_len = options.seq_len;
  if (options.micro_batch_size > 0) s.config.train.micro_batch_size = options.micro_batch_size;
  s.device = train::pick_device(s.config.train.device, 0);
  s.dtype = train::pick_precision(s.config.train.precision, s.device);
  s.warmup = options.warmup;
  s.repeats = options.steps;

  StepBenchmarkReport report;
  report.command = options.command;
  report.date = utc_now();
  report.device = train::device_name(s.device);
  report.dtype = c10::toString(s.dtype);
  report.torch_version = compat::torch_version();
  report.activation_checkpointing = s.config.train.activation_checkpointing;
  report.keep_attention = s.config.train.activation_checkpointing_keep_attention;
  report.document_mask = s.config.attention.document_mask;
  report.seq_len = s.config.train.seq_len;
  report.micro_batch_size = s.config.train.micro_batch_size;
  report.micro_batches = options.micro_batches;
  report.tokens_per_step = report.seq_len * report.micro_batch_size * report.micro_batches;
  report.warmup = options.warmup;
  report.steps = options.steps;
  report.cuda = s.device.is_cuda();

  if (options.documents > report.seq_len) {
    throw UsageError(fmt::format("--documents {}: more documents than the {} tokens of a row", options.documents,
                                 report.seq_len));
  }
  report.documents = options.documents;
  const auto batches = synthetic_batches(s.config, options.micro_batches, options.documents, s.device);
  s.positions = batches.front().positions;
  const std::optional<double> peak_flops = s.device.is_cuda() ? train::peak_bf16_flops(report.device) : std::nullopt;

  for (const auto& [kernels, method] : method_runs(options)) {
    Setup ms = s;
    ms.config.ssa.method = method;
    if (kernels == "eager") {
      ms.config.train.fused_kernels = false;
      ms.config.optim.fused = false;
    }
    const TrainedSteps trained = train_steps(ms, batches, options.steps);
    report.parameters = trained.parameters;
    IsolatedTimes isolated = time_isolated(ms, method);
    isolated.attention *= static_cast<double>(options.micro_batches);
    isolated.matmul *= static_cast<double>(options.micro_batches);

    MethodMeasurement r;
    r.method = method;
    r.kernels = kernels;
    r.step_seconds = trained.step_seconds;
    r.forward_backward_seconds = trained.forward_backward_seconds;
    r.each_step_seconds = trained.each_step_seconds;
    r.each_forward_backward_seconds = trained.each_forward_backward_seconds;
    r.tokens_per_second = static_cast<double>(report.tokens_per_step) / trained.step_seconds;
    r.flops_per_token = train::training_flops_per_token(ms.config);
    if (peak_flops) r.mfu = r.flops_per_token * r.tokens_per_second / *peak_flops;
    r.split = split_step(trained, isolated, r.fitted);
    r.isolated_attention_seconds = isolated.attention;
    r.isolated_matmul_seconds = isolated.matmul;
    r.peak_memory_bytes = trained.peak_memory_bytes;
    r.last_loss = trained.last_loss;
    r.skipped_steps = trained.skipped_steps;
    report.methods.push_back(r);
  }
  return report;
}

std::string step_benchmark_table(const StepBenchmarkReport& report) {
  std::string text = fmt::format(
      "ssa bench step: {}, {}, LibTorch {}, {:.1f}M parameters, {} tokens per step ({} x {} x {}), {} "
      "document(s) per row, activation checkpointing {}{}, {} warm-up + {} timed steps\n\n",
      report.device, report.dtype, report.torch_version, report.parameters / 1e6, report.tokens_per_step,
      report.micro_batches, report.micro_batch_size, report.seq_len, report.documents, report.activation_checkpointing,
      report.keep_attention ? " (attention kept)" : "", report.warmup, report.steps);
  text +=
      "| method | tokens/s | MFU | step ms | attention ms | matmul ms | elementwise* ms | optimizer ms | "
      "communication ms | peak memory GiB |\n"
      "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n";
  for (const auto& r : report.methods) {
    const double step = r.step_seconds;
    text += fmt::format("| {} | {:.0f} | {} | {:.1f} | {} | {} | {} | {} | {} | {:.2f} |\n", run_label(r),
                        r.tokens_per_second, r.mfu ? fmt::format("{:.1f}%", *r.mfu * 100) : "n/a", step * 1e3,
                        milliseconds_and_share(r.split.attention, step), milliseconds_and_share(r.split.matmul, step),
                        milliseconds_and_share(r.split.elementwise, step),
                        milliseconds_and_share(r.split.optimizer, step),
                        milliseconds_and_share(r.split.communication, step),
                        static_cast<double>(r.peak_memory_bytes) / (1 << 30));
  }
  text +=
      "\n* elementwise is a derived remainder: forward + backward minus attention and matmul, which are the attention "
      "op and the GEMMs timed alone on the step's shapes (times layers, plus recomputation under activation "
      "checkpointing). optimizer: the step minus forward + backward. communication: 0 (one process).\n";
  for (const auto& r : report.methods) {
    if (r.fitted) {
      text += fmt::format("{}: the isolated attention + matmul ({:.1f} ms) exceeded forward + backward ({:.1f} ms); "
                          "both were scaled down to fit and elementwise is 0.\n",
                          run_label(r), (r.isolated_attention_seconds + r.isolated_matmul_seconds) * 1e3,
                          r.forward_backward_seconds * 1e3);
    }
    if (r.skipped_steps > 0) {
      text += fmt::format("{}: {} timed step(s) had a non-finite loss and made no update.\n", run_label(r),
                          r.skipped_steps);
    }
  }
  if (report.document_mask && report.documents > 1) {
    text += "MFU counts causal attention over whole rows (train/model_flops.h); with documents masked apart the "
            "attention done is smaller.\n";
  }
  text += report.cuda ? "peak memory: LibTorch's CUDA allocator, reset before each method.\n"
                      : "peak memory: the process's peak resident set, which cannot be reset: each method's figure "
                        "includes the methods before it.\n";
  return text;
}

std::string step_benchmark_json(const StepBenchmarkReport& report) {
  nlohmann::json j;
  j["command"] = report.command;
  j["date"] = report.date;
  j["device"] = report.device;
  j["dtype"] = report.dtype;
  j["torch"] = report.torch_version;
  j["parameters"] = report.parameters;
  j["seq_len"] = report.seq_len;
  j["micro_batch_size"] = report.micro_batch_size;
  j["micro_batches"] = report.micro_batches;
  j["tokens_per_step"] = report.tokens_per_step;
  j["activation_checkpointing"] = report.activation_checkpointing;
  j["activation_checkpointing_keep_attention"] = report.keep_attention;
  j["documents_per_row"] = report.documents;
  j["document_mask"] = report.document_mask;
  j["warmup"] = report.warmup;
  j["steps"] = report.steps;
  j["peak_memory_kind"] = report.cuda ? "cuda_allocated_peak" : "process_peak_rss";
  j["elementwise_is_remainder"] = true;
  j["results"] = nlohmann::json::array();
  for (const auto& r : report.methods) {
    nlohmann::json m;
    m["method"] = r.method;
    m["kernels"] = r.kernels;
    m["tokens_per_second"] = r.tokens_per_second;
    m["mfu"] = r.mfu ? nlohmann::json(*r.mfu) : nlohmann::json(nullptr);
    m["flops_per_token"] = r.flops_per_token;
    m["step_seconds"] = r.step_seconds;
    m["forward_backward_seconds"] = r.forward_backward_seconds;
    m["each_step_seconds"] = r.each_step_seconds;
    m["each_forward_backward_seconds"] = r.each_forward_backward_seconds;
    m["split_seconds"] = {{"attention", r.split.attention},
                          {"matmul", r.split.matmul},
                          {"elementwise", r.split.elementwise},
                          {"optimizer", r.split.optimizer},
                          {"communication", r.split.communication}};
    m["isolated_seconds"] = {{"attention", r.isolated_attention_seconds}, {"matmul", r.isolated_matmul_seconds}};
    m["fitted"] = r.fitted;
    m["peak_memory_bytes"] = r.peak_memory_bytes;
    m["last_loss"] = r.last_loss;
    m["skipped_steps"] = r.skipped_steps;
    j["results"].push_back(m);
  }
  return j.dump(2) + "\n";
}

}  // namespace ssa::eval
