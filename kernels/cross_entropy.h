// Cross entropy of rows of bf16 logits with its gradient, in one kernel: the loss of each row and,
// in place of the logits, d(loss)/d(logits) = softmax - one-hot (zero on rows whose target is
// ignored). Float32 arithmetic; two reads of each row (an online max and exp-sum, then the
// gradient) and one write, where eager LibTorch makes an fp32 copy of the logits and passes over
// it six times (train/linear_cross_entropy.h calls this per chunk of the LM head's output).
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <cstdint>

namespace ssa::kernels {

// logits [rows, vocab] bf16 (read; overwritten by the gradient when `write_gradient`), targets
// int64 [rows] (each in [0, vocab) or ignore_index); writes row_loss [rows] float32:
// logsumexp(row) - row[target], 0 for an ignored row, NaN for a target outside [0, vocab) that is
// not ignore_index (so that a bad batch shows as a non-finite loss instead of reading out of bounds).
void cross_entropy_rows(__nv_bfloat16* logits, const int64_t* targets, float* row_loss, int64_t rows, int64_t vocab,
                        int64_t ignore_index, bool write_gradient, cudaStream_t stream);

}  // namespace ssa::kernels
