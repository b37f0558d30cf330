// How documents become training rows (docs/data-formats.md, "Rows and packing", is the
// specification; tests/data/test_loader_packing.cpp checks it).
//
// A row has seq_len + 1 tokens: the model's inputs are tokens[0, seq_len), the targets
// tokens[1, seq_len]. The inputs are cut into segments (document pieces, and padding); position
// ids restart at 0 at every segment start, attention stays inside segments (cu_seqlens), and the
// target at input k is masked when tokens[k + 1] starts a segment or is padding.
//
// paper:      the SSA paper's packing. A document of L stored tokens (ending with its EOS) is
//             cut into pieces: while more than seq_len tokens remain, a piece takes the next
//             seq_len - 1 tokens and gets an EOS inserted after them; the rest (<= seq_len
//             tokens, ending with the document's own EOS) is the last piece. Pieces are placed
//             greedily: into the current row while they fit in its seq_len input slots, else a
//             new row starts. Unused input slots and the final target slot tokens[seq_len] are
//             EOS padding.
// contiguous: windows over the concatenated documents: row r is stream tokens
//             [r * seq_len, r * seq_len + seq_len + 1), so consecutive rows overlap by one token;
//             segments start at the row start and at every document start.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

namespace ssa::data {

enum class Packing { paper, contiguous };

// "paper" | "contiguous"; anything else is a UsageError.
Packing parse_packing(std::string_view name);
std::string_view to_string(Packing packing);

struct Row {
  std::vector<int32_t> tokens;        // seq_len + 1
  std::vector<int32_t> position_ids;  // seq_len, per input
  std::vector<uint8_t> loss_mask;     // seq_len, per target: 1 = counts in the loss
  std::vector<int32_t> cu_seqlens;    // segment starts within the inputs (first 0), then seq_len
};

// Documents in the order they are packed: an epoch of a source, or its validation documents.
class DocumentSequence {
 public:
  virtual ~DocumentSequence() = default;
  virtual uint64_t size() const = 0;
  virtual uint64_t length(uint64_t position) const = 0;
  // Tokens [offset, offset + count) of the document at `position`, as int32 ids.
  virtual void copy(uint64_t position, uint64_t offset, uint64_t count, int32_t* out) const = 0;
};

// Where the next row begins: a document of the sequence and a token offset inside it.
struct PackCursor {
  uint64_t position = 0;
  uint64_t offset = 0;
};

class RowPacker {
 public:
  // seq_len >= 2 (UsageError otherwise).
  RowPacker(Packing packing, uint64_t seq_len, int32_t eos_id);

  Packing packing() const { return packing_; }
  uint64_t seq_len() const { return seq_len_; }

  // paper: moves `cursor` past the row starting there; false at the end of the sequence.
  // contiguous: moves it seq_len tokens on (the caller knows how many rows exist).
  bool skip_row(const DocumentSequence& sequence, PackCursor& cursor) const;
  // Builds the row at `cursor` and moves past it.
  void build_row(const DocumentSequence& sequence, PackCursor& cursor, Row& row) const;

 private:
  void build_paper_row(const DocumentSequence& sequence, PackCursor& cursor, Row& row) const;
  void build_contiguous_row(const DocumentSequence& sequence, PackCursor& cursor, Row& row) const;

  Packing packing_;
  uint64_t seq_len_;
  int32_t eos_id_;
};

// The rows of one sequence, found in one pass over document lengths (no token is read). Keeps
// the cursor of every 16th row, so row r is reached by skipping at most 15 rows: about one byte
// of memory per row.
class RowPlan {
 public:
  static RowPlan build(const RowPacker& packer, const DocumentSequence& sequence);

  uint64_t rows() const { return rows_; }
  // The cursor of row `row` (< rows()).
  PackCursor cursor(const RowPacker& packer, const DocumentSequence& sequence, uint64_t row) const;

 private:
  static constexpr uint64_t kCheckpointRows = 16;
  uint64_t rows_ = 0;
  std::vector<PackCursor> checkpoints_;
};

}  // namespace ssa::data
