// Rows gathered for one forward pass, flattened row-major so the trainer can wrap each field in a
// tensor of shape [rows, seq_len] without copying; and the layout that says which global rows a
// rank's micro-batch holds.
#pragma once

#include <cstdint>
#include <vector>

#include "ssa/data/row_packing.h"

namespace ssa::data {

struct MicroBatch {
  uint64_t first_row = 0;  // global (or validation) index of the first row; rows are consecutive
  uint64_t rows = 0;
  uint64_t seq_len = 0;
  std::vector<int32_t> input_ids;     // rows x seq_len: Row::tokens[0, seq_len)
  std::vector<int32_t> target_ids;    // rows x seq_len: Row::tokens[1, seq_len]
  std::vector<int32_t> position_ids;  // rows x seq_len
  std::vector<uint8_t> loss_mask;     // rows x seq_len; 1 = the target counts
  // Segment boundaries over the flattened rows * seq_len inputs (each row's cu_seqlens shifted by
  // its offset, rows never share a segment), ending with rows * seq_len; for varlen attention.
  std::vector<int32_t> cu_seqlens;
  int32_t max_seqlen = 0;      // longest segment
  uint64_t target_tokens = 0;  // number of 1s in loss_mask
};

// Appends `row` (of micro_batch.seq_len + 1 tokens) to the micro-batch.
void append_row(MicroBatch& micro_batch, const Row& row);

// Data-parallel layout of one optimizer step. A step consumes global_batch_rows consecutive
// global rows starting at the step's first row R (the rows consumed before it). Rank r's
// micro-batch a (0 <= a < accumulation_steps()) holds rows
//   R + a * (micro_batch_rows * world_size) + r * micro_batch_rows + [0, micro_batch_rows),
// so the ranks of a step together cover its rows exactly once, and one process
// (world_size 1) sees exactly the rows of any number of ranks together.
struct BatchLayout {
  uint64_t global_batch_rows = 1;
  uint64_t micro_batch_rows = 1;
  uint64_t world_size = 1;
  uint64_t rank = 0;

  // UsageError unless global_batch_rows is a positive multiple of micro_batch_rows * world_size
  // and rank < world_size.
  void check() const;
  uint64_t accumulation_steps() const { return global_batch_rows / (micro_batch_rows * world_size); }
  uint64_t micro_batch_first_row(uint64_t step_first_row, uint64_t micro) const {
    return step_first_row + micro * micro_batch_rows * world_size + rank * micro_batch_rows;
  }
};

}  // namespace ssa::data
