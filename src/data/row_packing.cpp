#include "ssa/data/row_packing.h"

#include <fmt/format.h>

#include <algorithm>
#include <stdexcept>

#include "ssa/util/error.h"

namespace ssa::data {

Packing parse_packing(std::string_view name) {
  if (name == "paper") return Packing::paper;
  if (name == "contiguous") return Packing::contiguous;
  throw UsageError(fmt::format("unknown packing '{}' (paper, contiguous)", name));
}

std::string_view to_string(Packing packing) { return packing == Packing::paper ? "paper" : "contiguous"; }

namespace {

// The next piece of a document under paper packing: `stored` tokens taken from the document,
// plus an inserted EOS when the document goes on after them.
struct Piece {
  uint64_t stored;
  bool inserted_eos;
  uint64_t total() const { return stored + (inserted_eos ? 1 : 0); }
};

Piece next_piece(uint64_t remaining, uint64_t seq_len) {
  if (remaining > seq_len) return Piece{seq_len - 1, true};
  return Piece{remaining, false};
}

// Moves the cursor past `stored` tokens of its document, which has `length` tokens.
void advance(PackCursor& cursor, uint64_t stored, uint64_t length) {
  cursor.offset += stored;
  if (cursor.offset == length) {
    ++cursor.position;
    cursor.offset = 0;
  }
}

// The length of the cursor's document after skipping empty documents; 0 at the end.
uint64_t current_length(const DocumentSequence& sequence, PackCursor& cursor) {
  for (; cursor.position < sequence.size(); ++cursor.position) {
    if (const uint64_t length = sequence.length(cursor.position); length > 0) return length;
  }
  return 0;
}

// Moves the cursor `count` tokens along the concatenated documents.
void advance_tokens(const DocumentSequence& sequence, PackCursor& cursor, uint64_t count) {
  while (count > 0) {
    const uint64_t length = current_length(sequence, cursor);
    if (length == 0) throw std::logic_error("contiguous row past the end of its sequence");
    const uint64_t step = std::min(count, length - cursor.offset);
    advance(cursor, step, length);
    count -= step;
  }
}

// Position ids, cu_seqlens and the loss mask from the segment starts and the first padding slot
// (`content_end`, seq_len + 1 without padding). `starts` holds the input slots that begin a
// segment, ascending, starting with 0; a start at slot seq_len (contiguous) only masks a target.
void finish_row(Row& row, uint64_t seq_len, const std::vector<uint64_t>& starts, uint64_t content_end) {
  row.position_ids.resize(seq_len);
  row.loss_mask.assign(seq_len, 1);
  row.cu_seqlens.clear();
  for (uint64_t s = 0; s < starts.size() && starts[s] < seq_len; ++s) {
    const uint64_t begin = starts[s];
    const uint64_t end = s + 1 < starts.size() ? std::min(starts[s + 1], seq_len) : seq_len;
    row.cu_seqlens.push_back(static_cast<int32_t>(begin));
    for (uint64_t k = begin; k < end; ++k) row.position_ids[k] = static_cast<int32_t>(k - begin);
  }
  row.cu_seqlens.push_back(static_cast<int32_t>(seq_len));
  for (uint64_t s : starts) {
    if (s > 0) row.loss_mask[s - 1] = 0;  // a segment's first token is never predicted
  }
  for (uint64_t slot = std::max<uint64_t>(content_end, 1); slot <= seq_len; ++slot) row.loss_mask[slot - 1] = 0;
}

}  // namespace

RowPacker::RowPacker(Packing packing, uint64_t seq_len, int32_t eos_id)
    : packing_(packing), seq_len_(seq_len), eos_id_(eos_id) {
  if (seq_len < 2) throw UsageError(fmt::format("seq_len {} is too short (at least 2)", seq_len));
  if (seq_len > (uint64_t{1} << 30)) throw UsageError(fmt::format("seq_len {} is too long", seq_len));
}

bool RowPacker::skip_row(const DocumentSequence& sequence, PackCursor& cursor) const {
  if (packing_ == Packing::contiguous) {
    advance_tokens(sequence, cursor, seq_len_);
    return true;
  }
  uint64_t filled = 0;
  for (;;) {
    const uint64_t length = current_length(sequence, cursor);
    if (length == 0) return filled > 0;
    const Piece piece = next_piece(length - cursor.offset, seq_len_);
    if (filled + piece.total() > seq_len_) return true;
    filled += piece.total();
    advance(cursor, piece.stored, length);
  }
}

void RowPacker::build_row(const DocumentSequence& sequence, PackCursor& cursor, Row& row) const {
  row.tokens.assign(seq_len_ + 1, eos_id_);
  if (packing_ == Packing::paper) {
    build_paper_row(sequence, cursor, row);
  } else {
    build_contiguous_row(sequence, cursor, row);
  }
}

void RowPacker::build_paper_row(const DocumentSequence& sequence, PackCursor& cursor, Row& row) const {
  std::vector<uint64_t> starts;
  uint64_t filled = 0;
  for (;;) {
    const uint64_t length = current_length(sequence, cursor);
    if (length == 0) break;
    const Piece piece = next_piece(length - cursor.offset, seq_len_);
    if (filled + piece.total() > seq_len_) break;
    starts.push_back(filled);
    sequence.copy(cursor.position, cursor.offset, piece.stored, row.tokens.data() + filled);
    filled += piece.total();  // an inserted EOS is already there: the row starts as all EOS
    advance(cursor, piece.stored, length);
  }
  if (starts.empty()) throw std::logic_error("paper row past the end of its sequence");
  if (filled < seq_len_) starts.push_back(filled);  // the padding is a segment of its own
  finish_row(row, seq_len_, starts, filled);
}

void RowPacker::build_contiguous_row(const DocumentSequence& sequence, PackCursor& cursor, Row& row) const {
  std::vector<uint64_t> starts{0};
  PackCursor reader = cursor;
  uint64_t filled = 0;
  while (filled < seq_len_ + 1) {
    const uint64_t length = current_length(sequence, reader);
    if (length == 0) throw std::logic_error("contiguous row past the end of its sequence");
    if (reader.offset == 0 && filled > 0) starts.push_back(filled);
    const uint64_t step = std::min(seq_len_ + 1 - filled, length - reader.offset);
    sequence.copy(reader.position, reader.offset, step, row.tokens.data() + filled);
    filled += step;
    advance(reader, step, length);
  }
  finish_row(row, seq_len_, starts, seq_len_ + 1);
  advance_tokens(sequence, cursor, seq_len_);
}

RowPlan RowPlan::build(const RowPacker& packer, const DocumentSequence& sequence) {
  RowPlan plan;
  if (packer.packing() == Packing::paper) {
    PackCursor cursor;
    for (;;) {
      const PackCursor start = cursor;
      if (!packer.skip_row(sequence, cursor)) break;
      if (plan.rows_ % kCheckpointRows == 0) plan.checkpoints_.push_back(start);
      ++plan.rows_;
    }
    return plan;
  }
  // contiguous: row r starts at stream token r * seq_len; it needs seq_len + 1 tokens.
  const uint64_t seq_len = packer.seq_len();
  const uint64_t stride = kCheckpointRows * seq_len;
  uint64_t document_start = 0, next_checkpoint = 0;
  for (uint64_t position = 0; position < sequence.size(); ++position) {
    const uint64_t length = sequence.length(position);
    while (next_checkpoint < document_start + length) {
      plan.checkpoints_.push_back(PackCursor{position, next_checkpoint - document_start});
      next_checkpoint += stride;
    }
    document_start += length;
  }
  plan.rows_ = document_start > seq_len ? (document_start - 1) / seq_len : 0;
  plan.checkpoints_.resize((plan.rows_ + kCheckpointRows - 1) / kCheckpointRows);
  return plan;
}

PackCursor RowPlan::cursor(const RowPacker& packer, const DocumentSequence& sequence, uint64_t row) const {
  PackCursor cursor = checkpoints_[row / kCheckpointRows];
  for (uint64_t k = 0; k < row % kCheckpointRows; ++k) packer.skip_row(sequence, cursor);
  return cursor;
}

}  // namespace ssa::data
