#include "ssa/data/micro_batch.h"

#include <fmt/format.h>

#include <algorithm>

#include "ssa/util/error.h"

namespace ssa::data {

void append_row(MicroBatch& batch, const Row& row) {
  const uint64_t seq_len = batch.seq_len;
  const int32_t offset = static_cast<int32_t>(batch.rows * seq_len);
  batch.input_ids.insert(batch.input_ids.end(), row.tokens.begin(), row.tokens.begin() + seq_len);
  batch.target_ids.insert(batch.target_ids.end(), row.tokens.begin() + 1, row.tokens.end());
  batch.position_ids.insert(batch.position_ids.end(), row.position_ids.begin(), row.position_ids.end());
  batch.loss_mask.insert(batch.loss_mask.end(), row.loss_mask.begin(), row.loss_mask.end());
  if (!batch.cu_seqlens.empty()) batch.cu_seqlens.pop_back();  // the previous row's end is this row's start
  for (std::size_t s = 0; s < row.cu_seqlens.size(); ++s) {
    batch.cu_seqlens.push_back(offset + row.cu_seqlens[s]);
    if (s > 0) batch.max_seqlen = std::max(batch.max_seqlen, row.cu_seqlens[s] - row.cu_seqlens[s - 1]);
  }
  for (uint8_t m : row.loss_mask) batch.target_tokens += m;
  ++batch.rows;
}

void BatchLayout::check() const {
  if (micro_batch_rows == 0 || world_size == 0 || global_batch_rows == 0 ||
      global_batch_rows % (micro_batch_rows * world_size) != 0) {
    throw UsageError(fmt::format(
        "global batch of {} rows is not a positive multiple of micro-batch rows x world size = {} x {}",
        global_batch_rows, micro_batch_rows, world_size));
  }
  if (rank >= world_size) throw UsageError(fmt::format("rank {} is not below the world size {}", rank, world_size));
}

}  // namespace ssa::data
