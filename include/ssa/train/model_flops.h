// Model FLOPs of one trained token and model FLOPs utilisation (MFU).
//
// Counted: the matrix multiplications the model needs, 2 FLOPs per multiply-add, times 3 for
// forward + backward (6 N per token over the N weights of every Linear layer and the LM head;
// the input embedding is a lookup), plus attention scores and values over the keys each query
// attends to: causal full attention counts its triangle (on average (T + 1) / 2 keys), sparse
// attention its selected blocks; the SSA dual stream counts both. Block-selection scores and
// the recomputation of activation checkpointing are not counted (MFU counts useful work).
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "ssa/config/config.h"

namespace ssa::train {

// Weights that take part in matrix multiplications (all Linear layers and the LM head).
int64_t matmul_parameters(const config::ModelConfig& model);

// Mean over the T positions of a row of the keys a query attends to: causal full attention, or
// block-sparse with `block_size` and `topk` (the current block counted up to the query).
double mean_attended_keys(int64_t seq_len, bool sparse, int64_t block_size, int64_t topk);

// Training FLOPs per token for `ssa.method` (full: full attention; sparse: sparse attention;
// ssa: both streams).
double training_flops_per_token(const config::Config& config);

// Dense BF16 tensor-core peak FLOP/s of a GPU from its device name (as CUDA reports it), or
// nullopt when the model is not in the table; never a guess.
std::optional<double> peak_bf16_flops(const std::string& device_name);

}  // namespace ssa::train
