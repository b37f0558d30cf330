// Row packing (ssa/data/row_packing.h) against a straightforward reference implementation of the
// documented semantics, plus the invariants every row must satisfy.
#include <gtest/gtest.h>

#include <algorithm>
#include <random>

#include "ssa/data/row_packing.h"
#include "ssa/util/error.h"

namespace ssa::data {
namespace {

constexpr int32_t kEos = 0;

class VectorSequence final : public DocumentSequence {
 public:
  explicit VectorSequence(std::vector<std::vector<int32_t>> documents) : documents_(std::move(documents)) {}
  uint64_t size() const override { return documents_.size(); }
  uint64_t length(uint64_t position) const override { return documents_[position].size(); }
  void copy(uint64_t position, uint64_t offset, uint64_t count, int32_t* out) const override {
    std::copy_n(documents_[position].begin() + static_cast<std::ptrdiff_t>(offset), count, out);
  }
  const std::vector<std::vector<int32_t>>& documents() const { return documents_; }

 private:
  std::vector<std::vector<int32_t>> documents_;
};

// Documents of the given lengths (EOS last); token 1000 * d + k + 1 elsewhere.
VectorSequence documents_of_lengths(const std::vector<uint64_t>& lengths) {
  std::vector<std::vector<int32_t>> documents;
  for (std::size_t d = 0; d < lengths.size(); ++d) {
    std::vector<int32_t> document;
    for (uint64_t k = 0; k + 1 < lengths[d]; ++k) document.push_back(static_cast<int32_t>(1000 * d + k + 1));
    if (lengths[d] > 0) document.push_back(kEos);
    documents.push_back(std::move(document));
  }
  return VectorSequence(std::move(documents));
}

VectorSequence random_documents(uint32_t seed, std::size_t count, uint64_t max_length) {
  std::mt19937 random(seed);
  std::uniform_int_distribution<uint64_t> length(0, max_length);
  std::vector<uint64_t> lengths(count);
  for (auto& l : lengths) l = length(random);
  return documents_of_lengths(lengths);
}

struct ReferenceRow {
  std::vector<int32_t> tokens;
  std::vector<uint64_t> starts;  // segment starts in the inputs
  uint64_t content_end;          // first padding slot
};

// The paper's packing, written the obvious way: materialise every piece, pack greedily.
std::vector<ReferenceRow> reference_paper(const VectorSequence& sequence, uint64_t seq_len) {
  std::vector<std::vector<int32_t>> pieces;
  for (const auto& document : sequence.documents()) {
    if (document.empty()) continue;
    // The content (without the trailing EOS) in chunks of seq_len - 1, each followed by EOS.
    const std::vector<int32_t> content(document.begin(), document.end() - 1);
    for (std::size_t at = 0; at < content.size() || (at == 0 && content.empty()); at += seq_len - 1) {
      std::vector<int32_t> piece(content.begin() + static_cast<std::ptrdiff_t>(at),
                                 content.begin() + static_cast<std::ptrdiff_t>(std::min(content.size(), at + seq_len - 1)));
      piece.push_back(kEos);
      pieces.push_back(piece);
      if (content.empty()) break;
    }
  }
  std::vector<ReferenceRow> rows;
  for (const auto& piece : pieces) {
    if (rows.empty() || rows.back().content_end + piece.size() > seq_len) rows.push_back(ReferenceRow{{}, {}, 0});
    ReferenceRow& row = rows.back();
    row.starts.push_back(row.content_end);
    row.tokens.insert(row.tokens.end(), piece.begin(), piece.end());
    row.content_end += piece.size();
  }
  for (auto& row : rows) {
    if (row.content_end < seq_len) row.starts.push_back(row.content_end);
    row.tokens.resize(seq_len + 1, kEos);
  }
  return rows;
}

std::vector<ReferenceRow> reference_contiguous(const VectorSequence& sequence, uint64_t seq_len) {
  std::vector<int32_t> stream;
  std::vector<bool> document_start;
  for (const auto& document : sequence.documents()) {
    for (std::size_t k = 0; k < document.size(); ++k) {
      stream.push_back(document[k]);
      document_start.push_back(k == 0);
    }
  }
  std::vector<ReferenceRow> rows;
  for (uint64_t begin = 0; begin + seq_len + 1 <= stream.size(); begin += seq_len) {
    ReferenceRow row{{stream.begin() + static_cast<std::ptrdiff_t>(begin),
                      stream.begin() + static_cast<std::ptrdiff_t>(begin + seq_len + 1)},
                     {0},
                     seq_len + 1};
    for (uint64_t k = 1; k <= seq_len; ++k) {
      if (document_start[begin + k]) row.starts.push_back(k);
    }
    rows.push_back(row);
  }
  return rows;
}

// The row must equal the reference and satisfy the documented invariants.
void expect_row(const Row& row, const ReferenceRow& expected, uint64_t seq_len, const std::string& where) {
  SCOPED_TRACE(where);
  ASSERT_EQ(row.tokens.size(), seq_len + 1);
  ASSERT_EQ(row.position_ids.size(), seq_len);
  ASSERT_EQ(row.loss_mask.size(), seq_len);
  EXPECT_EQ(row.tokens, expected.tokens);
  std::vector<int32_t> cu;
  for (uint64_t start : expected.starts) {
    if (start < seq_len) cu.push_back(static_cast<int32_t>(start));
  }
  cu.push_back(static_cast<int32_t>(seq_len));
  EXPECT_EQ(row.cu_seqlens, cu);
  for (std::size_t s = 0; s + 1 < row.cu_seqlens.size(); ++s) {
    ASSERT_LT(row.cu_seqlens[s], row.cu_seqlens[s + 1]) << "segments must be non-empty";
    for (int32_t k = row.cu_seqlens[s]; k < row.cu_seqlens[s + 1]; ++k) {
      ASSERT_EQ(row.position_ids[k], k - row.cu_seqlens[s]) << "position ids restart at each segment, k=" << k;
    }
  }
  for (uint64_t k = 0; k < seq_len; ++k) {
    const uint64_t slot = k + 1;  // the target of input k
    const bool starts_segment =
        std::find(expected.starts.begin(), expected.starts.end(), slot) != expected.starts.end();
    const bool padding = slot >= expected.content_end;
    ASSERT_EQ(row.loss_mask[k], (starts_segment || padding) ? 0 : 1) << "target of input " << k;
  }
}

void check_against_reference(const VectorSequence& sequence, Packing packing, uint64_t seq_len) {
  const RowPacker packer(packing, seq_len, kEos);
  const auto expected = packing == Packing::paper ? reference_paper(sequence, seq_len) : reference_contiguous(sequence, seq_len);
  const RowPlan plan = RowPlan::build(packer, sequence);
  ASSERT_EQ(plan.rows(), expected.size());
  // Sequentially, one cursor through the whole plan.
  PackCursor cursor;
  Row row;
  for (uint64_t r = 0; r < plan.rows(); ++r) {
    packer.build_row(sequence, cursor, row);
    expect_row(row, expected[r], seq_len, "sequential row " + std::to_string(r));
  }
  // Random access through the plan's checkpoints.
  for (uint64_t r = plan.rows(); r-- > 0;) {
    PackCursor at = plan.cursor(packer, sequence, r);
    packer.build_row(sequence, at, row);
    expect_row(row, expected[r], seq_len, "random-access row " + std::to_string(r));
  }
}

TEST(RowPacking, PaperRowsMatchTheReferenceOnRandomDocuments) {
  for (uint64_t seq_len : {2, 3, 8, 37}) {
    for (uint32_t seed : {1u, 2u, 3u}) {
      SCOPED_TRACE("seq_len " + std::to_string(seq_len) + " seed " + std::to_string(seed));
      check_against_reference(random_documents(seed, 200, 3 * seq_len), Packing::paper, seq_len);
    }
  }
}

TEST(RowPacking, ContiguousRowsMatchTheReferenceOnRandomDocuments) {
  for (uint64_t seq_len : {2, 5, 16, 41}) {
    for (uint32_t seed : {4u, 5u}) {
      SCOPED_TRACE("seq_len " + std::to_string(seq_len) + " seed " + std::to_string(seed));
      check_against_reference(random_documents(seed, 200, 3 * seq_len), Packing::contiguous, seq_len);
    }
  }
}

// seq_len 4, worked by hand: a document of 10 stored tokens (9 content + EOS) becomes the pieces
// 3 + inserted EOS, 3 + inserted EOS, and the last 3 + its own EOS.
TEST(RowPacking, PaperPiecesWorkedExample) {
  const VectorSequence sequence = documents_of_lengths({10, 2, 4});
  const RowPacker packer(Packing::paper, 4, kEos);
  const RowPlan plan = RowPlan::build(packer, sequence);
  ASSERT_EQ(plan.rows(), 5u);
  PackCursor cursor;
  Row row;
  // Document 0 = 1..9, EOS: pieces [1 2 3 E] [4 5 6 E] [7 8 9 E]; document 1 = [1001 E];
  // document 2 = [2001 2002 2003 E].
  packer.build_row(sequence, cursor, row);
  EXPECT_EQ(row.tokens, (std::vector<int32_t>{1, 2, 3, 0, 0}));
  EXPECT_EQ(row.loss_mask, (std::vector<uint8_t>{1, 1, 1, 0}));  // the row's extra target slot is padding
  EXPECT_EQ(row.cu_seqlens, (std::vector<int32_t>{0, 4}));
  packer.build_row(sequence, cursor, row);
  EXPECT_EQ(row.tokens, (std::vector<int32_t>{4, 5, 6, 0, 0}));
  packer.build_row(sequence, cursor, row);
  EXPECT_EQ(row.tokens, (std::vector<int32_t>{7, 8, 9, 0, 0}));
  packer.build_row(sequence, cursor, row);
  // [1001 E] fits (2 slots), [2001 2002 2003 E] does not fit the remaining 2: padding follows.
  EXPECT_EQ(row.tokens, (std::vector<int32_t>{1001, 0, 0, 0, 0}));
  EXPECT_EQ(row.position_ids, (std::vector<int32_t>{0, 1, 0, 1}));
  EXPECT_EQ(row.cu_seqlens, (std::vector<int32_t>{0, 2, 4}));
  EXPECT_EQ(row.loss_mask, (std::vector<uint8_t>{1, 0, 0, 0}));
  packer.build_row(sequence, cursor, row);
  EXPECT_EQ(row.tokens, (std::vector<int32_t>{2001, 2002, 2003, 0, 0}));
  EXPECT_EQ(row.position_ids, (std::vector<int32_t>{0, 1, 2, 3}));
  EXPECT_EQ(row.loss_mask, (std::vector<uint8_t>{1, 1, 1, 0}));
}

TEST(RowPacking, PaperPiecesNeverExceedSeqLen) {
  const uint64_t seq_len = 16;
  const VectorSequence sequence = random_documents(9, 300, 100);
  const RowPacker packer(Packing::paper, seq_len, kEos);
  const RowPlan plan = RowPlan::build(packer, sequence);
  PackCursor cursor;
  Row row;
  uint64_t content_tokens = 0;
  for (uint64_t r = 0; r < plan.rows(); ++r) {
    packer.build_row(sequence, cursor, row);
    for (std::size_t s = 0; s + 1 < row.cu_seqlens.size(); ++s) {
      EXPECT_LE(row.cu_seqlens[s + 1] - row.cu_seqlens[s], static_cast<int32_t>(seq_len));
    }
    EXPECT_EQ(row.tokens.back(), kEos);
    EXPECT_EQ(row.loss_mask.back(), 0) << "the extra target slot is always padding";
    for (std::size_t k = 0; k < seq_len; ++k) content_tokens += row.tokens[k] != kEos ? 1 : 0;
  }
  uint64_t expected_content = 0;
  for (const auto& document : sequence.documents()) expected_content += document.empty() ? 0 : document.size() - 1;
  EXPECT_EQ(content_tokens, expected_content) << "every content token lands in exactly one row";
}

TEST(RowPacking, ContiguousRowsOverlapByOneToken) {
  const VectorSequence sequence = random_documents(11, 100, 30);
  const RowPacker packer(Packing::contiguous, 8, kEos);
  const RowPlan plan = RowPlan::build(packer, sequence);
  ASSERT_GT(plan.rows(), 10u);
  PackCursor cursor;
  Row previous, row;
  packer.build_row(sequence, cursor, previous);
  for (uint64_t r = 1; r < plan.rows(); ++r) {
    packer.build_row(sequence, cursor, row);
    EXPECT_EQ(row.tokens.front(), previous.tokens.back());
    previous = row;
  }
}

TEST(RowPacking, ContiguousPlanCountsFullWindowsOnly) {
  const RowPacker packer(Packing::contiguous, 4, kEos);
  EXPECT_EQ(RowPlan::build(packer, documents_of_lengths({4})).rows(), 0u);   // 4 tokens < 5
  EXPECT_EQ(RowPlan::build(packer, documents_of_lengths({2, 3})).rows(), 1u);  // 5 tokens
  EXPECT_EQ(RowPlan::build(packer, documents_of_lengths({8})).rows(), 1u);    // windows [0,5), [4,9) needs 9
  EXPECT_EQ(RowPlan::build(packer, documents_of_lengths({9})).rows(), 2u);
}

TEST(RowPacking, RejectsTooShortSequences) {
  EXPECT_THROW(RowPacker(Packing::paper, 1, kEos), UsageError);
  EXPECT_THROW(parse_packing("greedy"), UsageError);
  EXPECT_EQ(parse_packing("contiguous"), Packing::contiguous);
}

}  // namespace
}  // namespace ssa::data
