#include "ssa/dist/data_parallel.h"

#include <chrono>
#include <cmath>

#include "ssa/train/device_info.h"
#include "ssa/train/grad_norm.h"
#include "ssa/train/train_step.h"

namespace ssa::dist {
namespace {

BucketLayout layout_for(const train::MasterWeights& weights, const config::DistConfig& config, int64_t world) {
  std::vector<int64_t> numels;
  for (const auto& [name, tensor] : weights.masters()) numels.push_back(tensor.numel());
  const auto elements = static_cast<int64_t>(config.bucket_mb * 1024.0 * 1024.0 / sizeof(float));
  return assign_buckets(numels, std::max<int64_t>(1, elements), world);
}

}  // namespace

DataParallel::DataParallel(ProcessGroup& group, train::MasterWeights& weights,
                           std::vector<torch::Tensor> compute_parameters, const config::DistConfig& config)
    : group_(group),
      weights_(weights),
      zero_(config.zero),
      layout_(layout_for(weights, config, group.size())),
      reducer_(group, layout_, std::move(compute_parameters),
               [&weights](size_t i) { return weights.accumulated_gradient(i); }, config.zero > 0,
               config.reduce_dtype == "bf16" ? torch::kBFloat16 : torch::kFloat32),
      shard_sums_(layout_.buckets.size()),
      device_(weights.masters().empty() ? torch::Device(torch::kCPU) : weights.masters().front().second.device()) {
  if (zero_ > 0) masters_.emplace(group, layout_, weights.masters());
  if (zero_ == 2) weights.discard_gradient_sums();
}

train::AdamW DataParallel::make_optimizer(const config::OptimConfig& optim) const {
  if (!masters_) return train::make_adamw(weights_, optim);
  std::vector<bool> decay;
  for (const auto& piece : masters_->piece_ranges()) {
    const auto& [name, master] = weights_.masters()[piece.parameter];
    decay.push_back(train::takes_weight_decay(name, master, optim.embedding_weight_decay));
  }
  return train::AdamW(masters_->pieces(), decay, train::adamw_options(optim));
}

std::vector<StatePiece> DataParallel::optimizer_pieces() const {
  if (!masters_) return whole_pieces(weights_.masters());
  std::vector<StatePiece> out;
  for (const auto& piece : masters_->piece_ranges()) {
    out.push_back({weights_.masters()[piece.parameter].first, piece.begin, piece.end, {piece.end - piece.begin}});
  }
  return out;
}

void DataParallel::before_backward(bool last) {
  if (zero_ == 2) {
    reducer_.arm(/*with_accumulated=*/false);
  } else if (last) {
    reducer_.arm(/*with_accumulated=*/true);
  }
}

void DataParallel::after_backward(bool last) {
  if (zero_ != 2 && !last) {
    weights_.accumulate();
    return;
  }
  reducer_.launch_remaining();
  // The reduction has taken what it needs: local gradients are not kept.
  weights_.zero_gradients();
  if (zero_ != 2) return;
  communicate("gradient reduction", [&] { reducer_.wait(); });
  torch::NoGradGuard no_grad;
  for (size_t b = 0; b < shard_sums_.size(); ++b) {
    if (shard_sums_[b].defined()) {
      shard_sums_[b].add_(reducer_.result(b));
    } else {
      shard_sums_[b] = reducer_.result(b).clone();
    }
  }
}

torch::Tensor DataParallel::shard_view(const torch::Tensor& chunk, const ShardPiece& piece) const {
  const int64_t chunk_start = group_.rank() * layout_.chunk(piece.bucket);
  return chunk.narrow(0, piece.bucket_offset - chunk_start, piece.end - piece.begin);
}

std::vector<torch::Tensor> DataParallel::gradients() {
  std::vector<torch::Tensor> out;
  if (zero_ == 2) {
    const auto sums = std::move(shard_sums_);
    shard_sums_.assign(layout_.buckets.size(), torch::Tensor());
    for (const auto& piece : masters_->piece_ranges()) out.push_back(shard_view(sums[piece.bucket], piece));
    return out;
  }
  communicate("gradient reduction", [&] { reducer_.wait(); });
  if (zero_ == 1) {
    for (const auto& piece : masters_->piece_ranges()) out.push_back(shard_view(reducer_.result(piece.bucket), piece));
    return out;
  }
  for (size_t i = 0; i < layout_.slots.size(); ++i) {
    const auto& slot = layout_.slots[i];
    out.push_back(
        reducer_.result(slot.bucket).narrow(0, slot.offset, slot.numel).view(weights_.masters()[i].second.sizes()));
  }
  return out;
}

double DataParallel::gradient_norm(const std::vector<torch::Tensor>& gradients) {
  double norm = 0;
  if (!masters_) {
    // Every rank holds the same reduced gradients: the local norm is the global one.
    group_.guarded("gradient norm", [&] { norm = train::global_grad_norm(gradients); });
    return norm;
  }
  double squares = 0;
  if (!gradients.empty()) {
    const auto norms = train::gradient_norms(gradients);
    group_.guarded("gradient norm", [&] { squares = norms.pow(2).sum().item<double>(); });
  }
  communicate("gradient norm", [&] { squares = group_.sum({squares}, "gradient norm")[0]; });
  return std::sqrt(squares);
}

void DataParallel::after_update() {
  if (masters_) communicate("parameter all-gather", [&] { masters_->gather(); });
}

void DataParallel::communicate(const std::string& what, const std::function<void()>& collective) {
  // Both waits under the watchdog: once a collective's wait() has put the current stream behind
  // NCCL's, a dead peer would block the synchronisation for ever.
  group_.guarded(what, [&] { train::synchronize_current_stream(device_); });
  const auto start = std::chrono::steady_clock::now();
  collective();
  group_.guarded(what, [&] { train::synchronize_current_stream(device_); });
  communication_seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

double DataParallel::take_communication_seconds() {
  const double seconds = communication_seconds_;
  communication_seconds_ = 0;
  return seconds;
}

}  // namespace ssa::dist
