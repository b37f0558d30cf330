// The routing kernel (kernels/block_select.cu) against float64 loops and the ATen reference path.
#include <algorithm>
#include <numeric>

#include "block_select.h"
#include "kernel_test_util.h"
#include "sparse_reference.h"
#include "ssa/attention/sparse_attention.h"
#include "ssa/attention/sparse_attention_cuda.h"

namespace ssa::test {
namespace {

struct SelectionStats {
  int64_t rows = 0;
  int64_t exact = 0;
  int64_t failures = 0;
};

// Checks one selection row against the float64 importance: slot 0 is the current block, then
// min(K - 1, c) distinct past blocks whose importance is the top set and non-increasing (both
// within `tol` of exact, which is what ties and float32 rounding allow), then -1.
void check_row(const SparseReference& ref, const int32_t* row, int64_t b, int64_t t, int64_t hs, SelectionStats& st) {
  ++st.rows;
  const int64_t c = t / ref.Bs;
  const int64_t valid = std::min(ref.K - 1, c);
  auto fail = [&](const std::string& what) {
    if (st.failures++ < 5) ADD_FAILURE() << "row b=" << b << " t=" << t << " hs=" << hs << ": " << what;
  };
  if (row[0] != c) return fail("slot 0 is " + std::to_string(row[0]) + ", expected current block " + std::to_string(c));
  for (int64_t s = valid + 1; s < ref.K; ++s) {
    if (row[s] != -1) return fail("slot " + std::to_string(s) + " should be -1, is " + std::to_string(row[s]));
  }
  if (valid == 0) {
    ++st.exact;
    return;
  }
  const std::vector<double> imp = ref.importance(b, t, hs);
  std::vector<int64_t> order(static_cast<size_t>(c));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t x, int64_t y) { return imp[x] > imp[y]; });
  double largest = 0;
  for (double x : imp) largest = std::max(largest, std::abs(x));
  const double tol = 2e-4 * largest + 1e-6;
  std::vector<char> chosen(static_cast<size_t>(c), 0);
  bool exact = true;
  double min_in = std::numeric_limits<double>::infinity();
  for (int64_t s = 1; s <= valid; ++s) {
    const int32_t id = row[s];
    if (id < 0 || id >= c) return fail("slot " + std::to_string(s) + " holds " + std::to_string(id) + ", not a past block");
    if (chosen[id]) return fail("block " + std::to_string(id) + " selected twice");
    chosen[id] = 1;
    exact = exact && id == order[s - 1];
    min_in = std::min(min_in, imp[id]);
    if (s > 1 && imp[id] > imp[row[s - 1]] + tol) return fail("slots out of order at " + std::to_string(s));
  }
  double max_out = -std::numeric_limits<double>::infinity();
  for (int64_t j = 0; j < c; ++j) {
    if (!chosen[j]) max_out = std::max(max_out, imp[j]);
  }
  if (max_out > min_in + tol) {
    return fail("not the top set: a dropped block has importance " + std::to_string(max_out) +
                " above a kept one's " + std::to_string(min_in));
  }
  if (exact) ++st.exact;
}

std::vector<int64_t> sampled_tokens(int64_t T, int64_t count, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<int64_t> tokens{0, 1, T / 2, T - 2, T - 1};
  std::uniform_int_distribution<int64_t> pick(0, T - 1);
  while (static_cast<int64_t>(tokens.size()) < count) tokens.push_back(pick(rng));
  for (auto& t : tokens) t = std::clamp<int64_t>(t, 0, T - 1);
  return tokens;
}

// Runs the kernel on `in` into a poisoned output and checks every row (every 48 sampled tokens past
// 8k) against the float64 top-k.
void check_kernel_selection(const KernelCase& c, const Inputs& in, uint64_t seed) {
  const auto spec = c.spec();
  const kernels::BlockSelectShape shape = block_select_shape(c);
  const int64_t h_sel = c.group ? c.kv_heads : c.q_heads;
  const auto selection = run_block_select(c, in);
  EXPECT_TRUE(selection.ge(-1).all().item<bool>());

  // The binding runs the same deterministic kernel.
  EXPECT_TRUE(torch::equal(selection, attention::select_blocks_cuda(in.q, in.k, spec)));

  const SparseReference ref(in.q, in.k, torch::Tensor(), torch::Tensor(), spec);
  const auto got = selection.cpu().contiguous();
  const int32_t* data = got.data_ptr<int32_t>();
  SelectionStats st;
  const bool sampled = c.length > 8192;
  const std::vector<int64_t> tokens = sampled ? sampled_tokens(c.length, 48, seed) : std::vector<int64_t>{};
  for (int64_t b = 0; b < c.batch; ++b) {
    const int64_t count = sampled ? static_cast<int64_t>(tokens.size()) : c.length;
    for (int64_t i = 0; i < count; ++i) {
      const int64_t t = sampled ? tokens[i] : i;
      for (int64_t hs = 0; hs < h_sel; ++hs) {
        check_row(ref, data + ((b * c.length + t) * h_sel + hs) * shape.slots, b, t, hs, st);
      }
    }
  }
  EXPECT_EQ(st.failures, 0);
  // Rows that passed the check above but differ from the float64 order hold near-ties (within
  // float32 rounding); they must stay rare. Long sequences have more candidates per row, so more
  // near-ties: allow 2% of the rows, and at least two of a small sample.
  const int64_t inexact = st.rows - st.exact;
  EXPECT_LE(inexact, std::max<int64_t>(2, st.rows / 50)) << st.exact << " of " << st.rows << " rows exact";
}

class BlockSelectTest : public ::testing::TestWithParam<KernelCase> {};

TEST_P(BlockSelectTest, MatchesFloat64TopK) {
  SSA_REQUIRE_CUDA();
  const KernelCase c = GetParam();
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  check_kernel_selection(c, random_inputs(c, seed), seed);
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, BlockSelectTest,
    ::testing::Values(KernelCase{2, 1000, 8, 2, 64, 16, 16, true},     // group of 4, T not a multiple of Bs
                      KernelCase{1, 777, 4, 4, 128, 32, 8, true},      // group of 1, head_dim 128
                      KernelCase{2, 600, 4, 2, 64, 64, 4, false},      // head selection, group of 2
                      KernelCase{1, 1500, 16, 2, 128, 16, 64, true},   // group of 8, 64 slots
                      KernelCase{1, 1100, 16, 1, 64, 128, 8, true},    // group of 16, block 128
                      KernelCase{1, 900, 32, 2, 64, 16, 16, false},    // head selection, group of 16
                      KernelCase{3, 256, 6, 2, 64, 16, 1, true},       // group of 3, current block only
                      KernelCase{2, 1800, 6, 2, 64, 16, 16, true},     // group of 3: a padding row per token
                      KernelCase{1, 2048, 8, 8, 64, 32, 64, false},    // every block selected
                      KernelCase{1, 1300, 12, 4, 128, 16, 33, false},  // 32 past slots
                      KernelCase{2, 3000, 8, 1, 64, 16, 40, true},     // 39 past slots
                      KernelCase{2, 1200, 4, 2, 128, 16, 16, true},    // group of 2
                      KernelCase{1, 2500, 8, 4, 64, 16, 60, true},     // group of 2, 59 past slots
                      KernelCase{1, 131072, 4, 1, 64, 16, 16, true}),  // 128k tokens, sampled rows
    [](const auto& info) { return info.param.name(); });

// Importance that grows steadily toward recent blocks (as local attention makes it in trained
// models) and the opposite, shrinking: the two orders of a row's candidates in which nearly every
// block beats the list's threshold when met, for a walk in either direction. Every key gains
// slope * t / T in every dimension and every query a positive offset, so q . kbar drifts along t.
TEST(BlockSelect, ImportanceDriftingAlongTheSequence) {
  SSA_REQUIRE_CUDA();
  for (const double slope : {1.0, -1.0}) {
    for (const bool group : {true, false}) {
      const KernelCase c{2, 2000, 8, 2, 64, 16, 16, group};
      const uint64_t seed = fresh_seed();
      SCOPED_TRACE(c.name() + " slope " + std::to_string(slope) + " seed " + std::to_string(seed));
      Inputs in = random_inputs(c, seed);
      const auto position = torch::arange(c.length, in.k.options().dtype(torch::kFloat32)) / c.length;
      in.k = (in.k.to(torch::kFloat32) + slope * position.view({1, -1, 1, 1})).to(torch::kBFloat16);
      in.q = (in.q.to(torch::kFloat32) + 0.5).to(torch::kBFloat16);
      check_kernel_selection(c, in, seed);
    }
  }
}

// The kernel and the ATen reference path (float32) agree up to near-ties.
TEST(BlockSelect, AgreesWithAtenReference) {
  SSA_REQUIRE_CUDA();
  for (const bool group : {true, false}) {
    const KernelCase c{2, 512, 8, 2, 64, 16, 8, group};
    const uint64_t seed = fresh_seed();
    SCOPED_TRACE(c.name() + " seed " + std::to_string(seed));
    const Inputs in = random_inputs(c, seed);
    const auto got = attention::select_blocks_cuda(in.q, in.k, c.spec()).cpu();
    const auto want = attention::select_blocks(in.q.cpu().to(torch::kFloat32), in.k.cpu().to(torch::kFloat32), c.spec(), 128);
    ASSERT_EQ(got.sizes(), want.sizes());
    const auto same_rows = got.eq(want).all(-1);
    const double agree = same_rows.to(torch::kFloat64).mean().item<double>();
    EXPECT_GE(agree, 0.98);
    // Where they differ, the kernel's rows still pass the float64 check.
    const SparseReference ref(in.q, in.k, torch::Tensor(), torch::Tensor(), c.spec());
    const auto differ = same_rows.logical_not().nonzero();
    SelectionStats st;
    const int64_t h_sel = got.size(2), K = got.size(3);
    for (int64_t i = 0; i < differ.size(0); ++i) {
      const int64_t b = differ[i][0].item<int64_t>(), t = differ[i][1].item<int64_t>(), hs = differ[i][2].item<int64_t>();
      check_row(ref, got.data_ptr<int32_t>() + ((b * c.length + t) * h_sel + hs) * K, b, t, hs, st);
    }
    EXPECT_EQ(st.failures, 0);
  }
}

}  // namespace
}  // namespace ssa::test
