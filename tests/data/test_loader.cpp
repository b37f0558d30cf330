// The data loader: determinism, resume, data-parallel coverage, epochs, mixtures, validation
// split, prefetching and state checks, on small synthetic shard folders.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <set>

#include "data/shard_fixture.h"
#include "ssa/data/index_permutation.h"
#include "ssa/data/loader.h"
#include "ssa/data/mixture_schedule.h"
#include "ssa/data/prefetcher.h"
#include "ssa/data/validation_iterator.h"
#include "ssa/data/validation_split.h"
#include "ssa/util/error.h"
#include "support/temp_dir.h"

namespace ssa::data {
namespace {

namespace fs = std::filesystem;
using test::Document;
using test::TempDir;

constexpr uint32_t kEos = 3;
constexpr uint32_t kUnique = 4000000000u;  // token modulo: every synthetic token is distinct

// A folder of `count` documents whose tokens are all distinct (uint32 shards), offset by `base`.
struct Corpus {
  explicit Corpus(uint64_t count, uint32_t seed = 1, uint32_t base = 100, uint64_t max_length = 40)
      : documents(test::make_documents(count, 1, max_length, kEos, seed, base, kUnique)) {
    test::write_shards(dir.path(), documents, 4, 500);
  }
  TempDir dir;
  std::vector<Document> documents;
};

LoaderOptions options_for(const std::vector<fs::path>& paths, uint64_t seq_len = 16) {
  LoaderOptions options;
  options.paths = paths;
  options.seq_len = seq_len;
  options.eos_id = kEos;
  options.seed = 7;
  return options;
}

bool same_batch(const MicroBatch& a, const MicroBatch& b) {
  return a.first_row == b.first_row && a.rows == b.rows && a.input_ids == b.input_ids && a.target_ids == b.target_ids &&
         a.position_ids == b.position_ids && a.loss_mask == b.loss_mask && a.cu_seqlens == b.cu_seqlens;
}

// Row r of a micro-batch as (inputs..., last target).
std::vector<int32_t> row_tokens(const MicroBatch& batch, uint64_t r) {
  const auto begin = batch.input_ids.begin() + static_cast<std::ptrdiff_t>(r * batch.seq_len);
  std::vector<int32_t> tokens(begin, begin + static_cast<std::ptrdiff_t>(batch.seq_len));
  tokens.push_back(batch.target_ids[(r + 1) * batch.seq_len - 1]);
  return tokens;
}

TEST(Loader, SameSeedSameRowsOtherSeedOtherRows) {
  Corpus corpus(300);
  const Loader a(options_for({corpus.dir.path()}));
  const Loader b(options_for({corpus.dir.path()}));
  auto other_options = options_for({corpus.dir.path()});
  other_options.seed = 8;
  const Loader c(other_options);
  const MicroBatch rows_a = a.rows(0, 64);
  EXPECT_TRUE(same_batch(rows_a, b.rows(0, 64)));
  EXPECT_FALSE(same_batch(rows_a, c.rows(0, 64)));
  // Random access agrees with batched access.
  for (uint64_t r : {0, 17, 63}) EXPECT_EQ(a.row(r).tokens, row_tokens(rows_a, r));
  EXPECT_TRUE(same_batch(a.rows(10, 20), b.rows(10, 20)));
}

// Every content token of the training documents appears exactly once per epoch, each
// document's tokens in order; row invariants hold throughout.
TEST(Loader, EpochCoversEveryTrainingDocumentOnce) {
  for (Packing packing : {Packing::paper, Packing::contiguous}) {
    SCOPED_TRACE(std::string(to_string(packing)));
    Corpus corpus(200);
    auto options = options_for({corpus.dir.path()}, 16);
    options.packing = packing;
    const Loader loader(options);
    const uint64_t rows = loader.epoch_rows(0, 0);
    std::map<int32_t, int> seen;
    for (uint64_t r = 0; r < rows; ++r) {
      const Row row = loader.row(r);
      ASSERT_EQ(row.cu_seqlens.front(), 0);
      ASSERT_EQ(row.cu_seqlens.back(), 16);
      for (std::size_t s = 0; s + 1 < row.cu_seqlens.size(); ++s) {
        for (int32_t k = row.cu_seqlens[s]; k < row.cu_seqlens[s + 1]; ++k) {
          ASSERT_EQ(row.position_ids[k], k - row.cu_seqlens[s]);
        }
        if (s > 0) {
          EXPECT_EQ(row.loss_mask[row.cu_seqlens[s] - 1], 0) << "first token of a segment is not a target";
        }
      }
      // Paper rows overlap nothing; contiguous rows share their last token with the next row.
      const std::size_t counted = packing == Packing::paper ? row.tokens.size() : row.tokens.size() - 1;
      for (std::size_t k = 0; k < counted; ++k) {
        if (row.tokens[k] != static_cast<int32_t>(kEos)) ++seen[row.tokens[k]];
      }
      if (packing == Packing::paper) {
        EXPECT_EQ(row.tokens[16], static_cast<int32_t>(kEos)) << "the extra target slot is padding";
        EXPECT_EQ(row.loss_mask[15], 0);
      }
    }
    uint64_t content = 0;
    for (const auto& document : corpus.documents) {
      for (std::size_t k = 0; k + 1 < document.size(); ++k) {
        ++content;
        if (packing == Packing::paper) {
          EXPECT_EQ(seen[static_cast<int32_t>(document[k])], 1);
        }
      }
    }
    if (packing == Packing::paper) {
      EXPECT_EQ(seen.size(), content);
    } else {
      for (const auto& [token, count] : seen) EXPECT_EQ(count, 1);
      EXPECT_GE(seen.size() + 16, content);  // only the tail after the last full window is dropped
    }
  }
}

TEST(Loader, EpochsContinueWithANewOrder) {
  Corpus corpus(100);
  const Loader loader(options_for({corpus.dir.path()}));
  const uint64_t epoch0 = loader.epoch_rows(0, 0);
  const Row first_of_epoch0 = loader.row(0);
  const Row first_of_epoch1 = loader.row(epoch0);
  EXPECT_NE(first_of_epoch0.tokens, first_of_epoch1.tokens);
  EXPECT_GT(loader.epoch_rows(0, 1), 0u);
  // Rows far past several epochs are available and deterministic.
  const uint64_t far = 5 * epoch0 + 3;
  EXPECT_EQ(loader.row(far).tokens, Loader(options_for({corpus.dir.path()})).row(far).tokens);
}

TEST(Loader, RanksTogetherSeeExactlyTheOneProcessRows) {
  Corpus corpus(300);
  const Loader loader(options_for({corpus.dir.path()}));
  const uint64_t global_batch = 12;
  for (uint64_t world : {1u, 2u, 3u, 4u}) {
    for (uint64_t micro_rows : {1u, 3u}) {
      if (global_batch % (micro_rows * world) != 0) continue;
      SCOPED_TRACE("world " + std::to_string(world) + " micro " + std::to_string(micro_rows));
      for (uint64_t step = 0; step < 3; ++step) {
        const uint64_t step_first_row = 5 + step * global_batch;  // resumed at row 5
        const MicroBatch one_process = loader.rows(step_first_row, global_batch);
        std::vector<int> covered(global_batch, 0);
        for (uint64_t rank = 0; rank < world; ++rank) {
          const BatchLayout layout{global_batch, micro_rows, world, rank};
          for (uint64_t micro = 0; micro < layout.accumulation_steps(); ++micro) {
            const MicroBatch batch = loader.micro_batch(layout, step_first_row, micro);
            ASSERT_EQ(batch.rows, micro_rows);
            for (uint64_t r = 0; r < batch.rows; ++r) {
              const uint64_t index = batch.first_row + r - step_first_row;
              ASSERT_LT(index, global_batch);
              ++covered[index];
              EXPECT_EQ(row_tokens(batch, r), row_tokens(one_process, index));
            }
          }
        }
        EXPECT_EQ(covered, std::vector<int>(global_batch, 1)) << "disjoint and covering";
      }
    }
  }
  EXPECT_THROW((BatchLayout{12, 5, 1, 0}.check()), UsageError);
  EXPECT_THROW((BatchLayout{12, 3, 2, 2}.check()), UsageError);
}

TEST(Loader, ResumeContinuesExactlyWithOtherWorldSizes) {
  Corpus corpus(300);
  const auto options = options_for({corpus.dir.path()});
  const Loader uninterrupted(options);
  const BatchLayout single{8, 2, 1, 0};
  std::vector<MicroBatch> expected;
  for (uint64_t step = 0; step < 6; ++step) {
    for (uint64_t micro = 0; micro < single.accumulation_steps(); ++micro) {
      expected.push_back(uninterrupted.micro_batch(single, step * 8, micro));
    }
  }
  // Interrupted after 3 steps: the state goes through JSON text as in trainer_state.json.
  const std::string saved = uninterrupted.state(3 * 8).to_json().dump();
  const Loader resumed(options);
  const uint64_t rows_consumed = resumed.resume(LoaderState::from_json(nlohmann::json::parse(saved)));
  EXPECT_EQ(rows_consumed, 24u);
  for (uint64_t step = 3; step < 6; ++step) {
    for (uint64_t micro = 0; micro < 4; ++micro) {
      EXPECT_TRUE(same_batch(resumed.micro_batch(single, rows_consumed + (step - 3) * 8, micro), expected[step * 4 + micro]));
    }
  }
  // Resumed on two ranks: rank 0 and 1 interleave the same rows.
  const BatchLayout rank1{8, 2, 2, 1};
  const MicroBatch batch = resumed.micro_batch(rank1, rows_consumed, 1);
  EXPECT_EQ(batch.first_row, 24u + 1 * 4 + 2);
  EXPECT_EQ(row_tokens(batch, 0), row_tokens(expected[3 * 4 + 3], 0));
}

TEST(Loader, ResumeRefusesAChangedShardSetOrOrder) {
  Corpus corpus(100);
  const auto options = options_for({corpus.dir.path()});
  const LoaderState state = Loader(options).state(40);

  auto other_seed = options;
  other_seed.seed = 99;
  EXPECT_THROW(Loader(other_seed).resume(state), UsageError);
  auto other_packing = options;
  other_packing.packing = Packing::contiguous;
  EXPECT_THROW(Loader(other_packing).resume(state), UsageError);

  test::write_shards(corpus.dir.path(), {{5, 6, kEos}}, 4, 500, "extra");
  try {
    Loader(options).resume(state);
    FAIL() << "a changed shard set must not resume";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("changed since the checkpoint"), std::string::npos) << e.what();
  }
}

TEST(LoaderState, JsonRoundTripAndMissingKeys) {
  Corpus corpus(50);
  const LoaderState state = Loader(options_for({corpus.dir.path()})).state(123);
  const nlohmann::json json = state.to_json();
  const LoaderState back = LoaderState::from_json(json);
  EXPECT_EQ(back.to_json(), json);
  EXPECT_EQ(json.at("rows_consumed"), 123);
  EXPECT_EQ(json.at("sources").at(0).at("documents"), 50);
  nlohmann::json broken = json;
  broken.erase("seed");
  EXPECT_THROW(LoaderState::from_json(broken), FormatError);
  broken = json;
  broken["sources"][0]["tokens"] = "many";
  EXPECT_THROW(LoaderState::from_json(broken), FormatError);
}

TEST(Loader, MixtureFollowsTheWeights) {
  Corpus a(200, 1, 100), b(200, 2, 2000000000);
  auto options = options_for({a.dir.path(), b.dir.path()});
  options.weights = {3, 1};
  const Loader loader(options);
  const MicroBatch rows = loader.rows(0, 400);
  uint64_t from_b = 0;
  for (uint64_t r = 0; r < rows.rows; ++r) {
    const auto tokens = row_tokens(rows, r);
    const bool b_row = std::any_of(tokens.begin(), tokens.end(), [](int32_t t) { return t >= 2000000000 - 1; });
    from_b += b_row ? 1 : 0;
    const uint64_t expected_b = (r + 1) / 4;
    EXPECT_LE(from_b > expected_b ? from_b - expected_b : expected_b - from_b, 1u) << "after row " << r;
  }
  EXPECT_EQ(from_b, 100u);
  EXPECT_TRUE(same_batch(loader.rows(100, 50), Loader(options).rows(100, 50)));
  options.weights = {1, 0};
  EXPECT_THROW(Loader{options}, UsageError);
  options.weights = {1};
  EXPECT_THROW(Loader{options}, UsageError);
}

TEST(Loader, ValidationDocumentsAreHeldOutOfTraining) {
  Corpus corpus(200);
  auto options = options_for({corpus.dir.path()});
  options.validation_documents = 20;
  const Loader loader(options);
  EXPECT_EQ(loader.validation_documents(0), 20u);
  std::set<int32_t> training, validation;
  for (uint64_t r = 0; r < loader.epoch_rows(0, 0); ++r) {
    for (int32_t t : loader.row(r).tokens) training.insert(t);
  }
  for (uint64_t r = 0; r < loader.validation_rows(); ++r) {
    for (int32_t t : loader.validation_row(r).tokens) validation.insert(t);
  }
  training.erase(kEos);
  validation.erase(kEos);
  for (int32_t t : validation) EXPECT_EQ(training.count(t), 0u) << "validation token in training rows";
  std::set<int32_t> all;
  for (const auto& document : corpus.documents) all.insert(document.begin(), document.end() - 1);
  std::set<int32_t> both = training;
  both.insert(validation.begin(), validation.end());
  EXPECT_EQ(both, all);
  // Independent of the training seed.
  auto reseeded = options;
  reseeded.seed = 1234;
  EXPECT_EQ(Loader(reseeded).validation_row(0).tokens, loader.validation_row(0).tokens);

  // A fraction: 10% of 200 documents.
  options.validation_documents = 0;
  options.validation_fraction = 0.1;
  EXPECT_EQ(Loader(options).validation_documents(0), 20u);
  options.validation_documents = 5;
  EXPECT_THROW(Loader{options}, UsageError);
}

TEST(Loader, ValidationIteratorPadsTheLastBatchOnEveryRank) {
  Corpus corpus(200);
  auto options = options_for({corpus.dir.path()});
  options.validation_documents = 30;
  const Loader loader(options);
  const uint64_t rows = loader.validation_rows();
  ASSERT_GT(rows, 3u);
  uint64_t real_rows = 0, batches = 0;
  for (uint64_t rank = 0; rank < 3; ++rank) {
    ValidationIterator iterator(loader, 2, 3, rank);
    EXPECT_EQ(iterator.micro_batches(), (rows + 5) / 6);
    MicroBatch batch;
    while (iterator.next(batch)) {
      ++batches;
      for (uint64_t r = 0; r < batch.rows; ++r) {
        const bool padding = batch.first_row + r >= rows;
        const auto mask_begin = batch.loss_mask.begin() + static_cast<std::ptrdiff_t>(r * batch.seq_len);
        const bool any_target = std::any_of(mask_begin, mask_begin + static_cast<std::ptrdiff_t>(batch.seq_len),
                                            [](uint8_t m) { return m != 0; });
        EXPECT_EQ(any_target, !padding);
        real_rows += padding ? 0 : 1;
      }
    }
  }
  EXPECT_EQ(real_rows, rows);
  EXPECT_EQ(batches, 3 * ((rows + 5) / 6));
}

TEST(Prefetcher, DeliversTheDirectSequence) {
  Corpus corpus(300);
  const Loader loader(options_for({corpus.dir.path()}));
  const BatchLayout layout{12, 2, 3, 1};
  Prefetcher prefetcher(loader, layout, 36, 3);
  for (uint64_t step = 0; step < 5; ++step) {
    for (uint64_t micro = 0; micro < layout.accumulation_steps(); ++micro) {
      EXPECT_TRUE(same_batch(prefetcher.next(), loader.micro_batch(layout, 36 + step * 12, micro)));
    }
  }
  // Destroying it with a full queue stops the thread (the test would hang otherwise).
}

TEST(Prefetcher, ThreadErrorsReachTheCaller) {
  Corpus corpus(100);
  auto options = options_for({corpus.dir.path()});
  options.vocab_size = 1000;  // the synthetic tokens are far larger
  const Loader loader(options);
  Prefetcher prefetcher(loader, BatchLayout{4, 2, 1, 0}, 0);
  try {
    prefetcher.next();
    FAIL() << "expected the vocabulary check to fail";
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("not below the vocabulary size 1000"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("shard_0000"), std::string::npos) << e.what();
  }
}

TEST(Loader, ReadsLlmcAndRawSources) {
  TempDir dir;
  std::string raw;
  for (int d = 0; d < 50; ++d) {
    for (uint16_t token : {uint16_t(10 + d), uint16_t(20 + d), uint16_t(kEos)}) raw.append(reinterpret_cast<const char*>(&token), 2);
  }
  test::write_bytes(dir / "train.bin", raw);
  auto options = options_for({dir / "train.bin"}, 8);
  options.format = ShardFormat::raw_u16;
  options.shuffle = false;
  const Loader loader(options);
  EXPECT_EQ(loader.source(0).document_count(), 50u);
  // Without shuffling, paper rows hold whole 3-token documents in storage order: 2 per row.
  EXPECT_EQ(loader.row(0).tokens, (std::vector<int32_t>{10, 20, 3, 11, 21, 3, 3, 3, 3}));
  EXPECT_EQ(loader.row(0).position_ids, (std::vector<int32_t>{0, 1, 2, 0, 1, 2, 0, 1}));
  EXPECT_EQ(loader.row(0).loss_mask, (std::vector<uint8_t>{1, 1, 0, 1, 1, 0, 0, 0}));
}

TEST(Loader, RejectsBadOptions) {
  Corpus corpus(20, 1, 100, 5);
  auto options = options_for({corpus.dir.path()});
  options.eos_id.reset();
  EXPECT_THROW(Loader{options}, UsageError);
  options = options_for({corpus.dir.path()}, 1);
  EXPECT_THROW(Loader{options}, UsageError);
  options = options_for({corpus.dir.path()}, 4096);
  options.packing = Packing::contiguous;  // 20 short documents hold fewer than 4097 tokens
  EXPECT_THROW(Loader{options}, UsageError);
  options = options_for({corpus.dir.path()});
  options.token_width = 2;  // the shards have 4-byte tokens
  EXPECT_THROW(Loader{options}, FormatError);
}

// ---------------------------------------------------------------------------------------------
// Building blocks.

TEST(IndexPermutation, IsABijectionAndDependsOnTheKey) {
  for (uint64_t size : {1u, 2u, 3u, 5u, 16u, 17u, 1000u, 4097u}) {
    const IndexPermutation permutation(size, 42);
    std::vector<bool> hit(size, false);
    for (uint64_t i = 0; i < size; ++i) {
      const uint64_t image = permutation(i);
      ASSERT_LT(image, size);
      ASSERT_FALSE(hit[image]);
      hit[image] = true;
    }
  }
  const IndexPermutation a(1000, 1), b(1000, 2);
  int same = 0;
  for (uint64_t i = 0; i < 1000; ++i) same += a(i) == b(i) ? 1 : 0;
  EXPECT_LT(same, 20);
  int fixed = 0;
  for (uint64_t i = 0; i < 1000; ++i) fixed += a(i) == i ? 1 : 0;
  EXPECT_LT(fixed, 20);
}

TEST(ValidationSplit, PartitionsTheDocuments) {
  for (uint64_t documents : {1u, 2u, 7u, 100u, 1001u}) {
    for (uint64_t held_out : {0u, 1u, 3u, 50u, 1000u}) {
      if (held_out > 0 && held_out >= documents) {
        EXPECT_THROW(ValidationSplit(documents, held_out), UsageError);
        continue;
      }
      const ValidationSplit split(documents, held_out);
      std::vector<int> owner(documents, 0);
      for (uint64_t i = 0; i < split.validation_documents(); ++i) ++owner.at(split.validation_document(i));
      for (uint64_t t = 0; t < split.training_documents(); ++t) owner.at(split.training_document(t)) += 2;
      EXPECT_EQ(std::count(owner.begin(), owner.end(), 1), static_cast<std::ptrdiff_t>(held_out));
      EXPECT_EQ(std::count(owner.begin(), owner.end(), 2), static_cast<std::ptrdiff_t>(documents - held_out));
      for (uint64_t t = 1; t < split.training_documents(); ++t) {
        EXPECT_LT(split.training_document(t - 1), split.training_document(t));
      }
    }
  }
}

TEST(MixtureSchedule, EveryPrefixIsWithinOneRowOfItsShare) {
  const MixtureSchedule schedule({0.5, 0.3, 0.15, 0.05});
  const auto rows = schedule.locate(0, 5000);
  std::vector<uint64_t> counts(4, 0);
  for (uint64_t n = 0; n < rows.size(); ++n) {
    ASSERT_EQ(rows[n].row, counts[rows[n].source]) << "source rows are numbered consecutively";
    ++counts[rows[n].source];
    for (std::size_t k = 0; k < 4; ++k) {
      EXPECT_NEAR(static_cast<double>(counts[k]), schedule.weights()[k] * static_cast<double>(n + 1), 1.0);
    }
  }
  // Random access equals the sequential answer, also across the 1024-row checkpoints.
  for (uint64_t n : {0u, 1023u, 1024u, 3333u, 4999u}) {
    EXPECT_EQ(schedule.locate(n).source, rows[n].source);
    EXPECT_EQ(schedule.locate(n).row, rows[n].row);
  }
}

}  // namespace
}  // namespace ssa::data
