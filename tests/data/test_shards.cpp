// Token shards: datatrove layout written by ShardWriter and read back, llm.c and raw streams, and
// every corruption the reader must name.
#include <gtest/gtest.h>

#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <functional>

#include "data/shard_fixture.h"
#include "ssa/data/shard_metadata.h"
#include "ssa/data/shard_set.h"
#include "ssa/data/shard_writer.h"
#include "ssa/util/error.h"
#include "support/temp_dir.h"

namespace ssa::data {
namespace {

namespace fs = std::filesystem;
using test::Document;
using test::TempDir;

constexpr uint32_t kEos = 7;

std::string error_of(const std::function<void()>& action) {
  try {
    action();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "(no error)";
}

template <typename Error>
std::string expect_error(const std::function<void()>& action) {
  try {
    action();
  } catch (const Error& e) {
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "wrong exception type: " << e.what();
    return e.what();
  }
  ADD_FAILURE() << "no exception";
  return "";
}

ShardSet open_datatrove(const fs::path& path, uint32_t width = 0) {
  return ShardSet::open(path, ShardSetOptions{ShardFormat::datatrove, width, {}});
}

std::vector<Document> read_all(const ShardSet& set) {
  std::vector<Document> documents;
  for (uint64_t d = 0; d < set.document_count(); ++d) {
    const auto document = set.document(d);
    Document tokens(document.length);
    document.shard->copy_tokens(document.begin, document.length, tokens.data());
    documents.push_back(tokens);
  }
  return documents;
}

TEST(ShardMetadata, MatchesDatatroveText) {
  EXPECT_EQ(format_shard_metadata({"meta-llama/Llama-3.2-1B", 4, 1234567}), "meta-llama/Llama-3.2-1B|4\n1234567\n1.23 MT");
  EXPECT_EQ(humanize_token_count(0), "0.00 T");
  EXPECT_EQ(humanize_token_count(12), "12.0 T");
  EXPECT_EQ(humanize_token_count(999), "999 T");
  EXPECT_EQ(humanize_token_count(1000), "1.00 kT");
  EXPECT_EQ(humanize_token_count(123456), "123 kT");
  EXPECT_EQ(humanize_token_count(100000000000ull), "100 GT");
  const auto parsed = parse_shard_metadata("a|b|2\n42\n42.0 T", "x.ds.metadata");
  EXPECT_EQ(parsed.tokenizer, "a|b");
  EXPECT_EQ(parsed.token_width, 2u);
  EXPECT_EQ(parsed.token_count, 42u);
  EXPECT_NE(expect_error<FormatError>([] { parse_shard_metadata("gpt2|3\n5\n", "m"); }).find("token size 3"), std::string::npos);
  EXPECT_NE(expect_error<FormatError>([] { parse_shard_metadata("gpt2\n5\n", "m"); }).find("m: first line"), std::string::npos);
  EXPECT_NE(expect_error<FormatError>([] { parse_shard_metadata("gpt2|2", "m"); }).find("m:"), std::string::npos);
}

TEST(Shards, RoundTripUint16AndUint32) {
  for (uint32_t width : {2u, 4u}) {
    SCOPED_TRACE(width);
    TempDir dir;
    const uint32_t base = width == 4 ? 100000 : 0;
    const auto documents = test::make_documents(50, 1, 60, kEos, 3, base, width == 4 ? 4000000 : 60000);
    const auto written = test::write_shards(dir.path(), documents, width, 300);
    ASSERT_GT(written.size(), 3u);
    const ShardSet set = open_datatrove(dir.path());
    EXPECT_EQ(set.token_width(), width);
    EXPECT_EQ(set.shards().size(), written.size());
    EXPECT_EQ(set.document_count(), documents.size());
    EXPECT_EQ(read_all(set), documents);
    uint64_t tokens = 0;
    for (const auto& d : documents) tokens += d.size();
    EXPECT_EQ(set.token_count(), tokens);
    // Shards roll over once they hold at least 300 tokens; a document is never split.
    for (std::size_t s = 0; s + 1 < written.size(); ++s) {
      EXPECT_GE(written[s].tokens, 300u);
      EXPECT_LT(written[s].tokens, 300u + 60u);
    }
    // Byte layout: little-endian tokens, uint64 document ends in tokens, datatrove's metadata.
    const std::string ds = test::read_bytes(dir / "shard_00000.ds");
    const std::string index = test::read_bytes(dir / "shard_00000.ds.index");
    ASSERT_EQ(ds.size(), written[0].tokens * width);
    uint32_t first = 0;
    std::memcpy(&first, ds.data(), width);
    EXPECT_EQ(first, documents[0][0]);
    uint64_t end0 = 0;
    std::memcpy(&end0, index.data(), 8);
    EXPECT_EQ(end0, documents[0].size());
    EXPECT_EQ(index.size(), 8 * written[0].documents);
    EXPECT_EQ(test::read_bytes(dir / "shard_00000.ds.metadata"),
              fmt::format("test-tokenizer|{}\n{}\n{}", width, written[0].tokens, humanize_token_count(written[0].tokens)));
  }
}

TEST(Shards, FingerprintIgnoresLocationButSeesContent) {
  TempDir a, b, c;
  const auto documents = test::make_documents(20, 1, 30, kEos);
  test::write_shards(a.path(), documents);
  test::write_shards(b.path(), documents);
  auto changed = documents;
  changed.pop_back();
  test::write_shards(c.path(), changed);
  EXPECT_EQ(open_datatrove(a.path()).fingerprint(), open_datatrove(b.path()).fingerprint());
  EXPECT_NE(open_datatrove(a.path()).fingerprint(), open_datatrove(c.path()).fingerprint());
}

TEST(Shards, SingleFileAndSortedListing) {
  TempDir dir;
  test::write_shards(dir.path(), test::make_documents(5, 2, 5, kEos, 1), 2, 1000, "b");
  test::write_shards(dir.path(), test::make_documents(3, 2, 5, kEos, 2), 2, 1000, "a");
  const ShardSet set = open_datatrove(dir.path());
  ASSERT_EQ(set.shards().size(), 2u);
  EXPECT_EQ(set.shards()[0].path().filename(), "a_00000.ds");
  EXPECT_EQ(set.document_count(), 8u);
  EXPECT_EQ(open_datatrove(dir / "b_00000.ds").document_count(), 5u);
  // A lone NAME.ds.metadata (datatrove's merger writes the folder total so) is ignored.
  test::write_bytes(dir / "total.ds.metadata", "x|2\n0\n0.00 T");
  EXPECT_EQ(open_datatrove(dir.path()).shards().size(), 2u);
}

class DamagedShard : public ::testing::Test {
 protected:
  void SetUp() override {
    documents_ = test::make_documents(10, 2, 20, kEos);
    test::write_shards(dir_.path(), documents_, 2, 100000);
    ds_ = dir_ / "shard_00000.ds";
    index_ = dir_ / "shard_00000.ds.index";
    metadata_ = dir_ / "shard_00000.ds.metadata";
  }
  std::string open_error() {
    return expect_error<FormatError>([&] { open_datatrove(dir_.path()); });
  }
  TempDir dir_;
  std::vector<Document> documents_;
  fs::path ds_, index_, metadata_;
};

TEST_F(DamagedShard, TruncatedTokensOddByteCount) {
  const std::string bytes = test::read_bytes(ds_);
  test::write_bytes(ds_, bytes.substr(0, bytes.size() - 1));
  const std::string message = open_error();
  EXPECT_NE(message.find(ds_.string()), std::string::npos) << message;
  EXPECT_NE(message.find("not a multiple of the 2-byte token size"), std::string::npos) << message;
}

TEST_F(DamagedShard, TruncatedTokensIndexPointsPastTheData) {
  const std::string bytes = test::read_bytes(ds_);
  test::write_bytes(ds_, bytes.substr(0, bytes.size() - 10));
  const std::string message = open_error();
  EXPECT_NE(message.find(index_.string()), std::string::npos) << message;
  EXPECT_NE(message.find("truncated .ds"), std::string::npos) << message;
}

TEST_F(DamagedShard, IndexNotIncreasing) {
  std::string index = test::read_bytes(index_);
  uint64_t big = 1000;
  std::memcpy(index.data() + 8, &big, 8);  // document 1 ends after document 2
  test::write_bytes(index_, index);
  const std::string message = open_error();
  EXPECT_NE(message.find("index not increasing"), std::string::npos) << message;
  EXPECT_NE(message.find(index_.string()), std::string::npos) << message;
}

TEST_F(DamagedShard, TruncatedIndex) {
  const std::string index = test::read_bytes(index_);
  test::write_bytes(index_, index.substr(0, index.size() - 3));
  EXPECT_NE(open_error().find("not a multiple of 8"), std::string::npos);
}

TEST_F(DamagedShard, TokensAfterTheLastDocument) {
  const std::string index = test::read_bytes(index_);
  test::write_bytes(index_, index.substr(0, index.size() - 8));
  EXPECT_NE(open_error().find("tokens after the last document end"), std::string::npos);
}

TEST_F(DamagedShard, MetadataWidthDisagreesWithConfiguration) {
  const std::string message = expect_error<FormatError>([&] { open_datatrove(dir_.path(), 4); });
  EXPECT_NE(message.find(metadata_.string()), std::string::npos) << message;
  EXPECT_NE(message.find("says 2-byte tokens but the configuration says 4-byte"), std::string::npos) << message;
}

TEST_F(DamagedShard, MetadataWidthDisagreesWithFile) {
  // uint16 tokens declared as uint32: the token count no longer matches the index.
  uint64_t tokens = 0;
  for (const auto& d : documents_) tokens += d.size();
  test::write_bytes(metadata_, fmt::format("test-tokenizer|4\n{}\nx", tokens));
  const std::string message = open_error();
  EXPECT_TRUE(message.find("truncated") != std::string::npos || message.find("multiple") != std::string::npos ||
              message.find("holds") != std::string::npos)
      << message;
}

TEST_F(DamagedShard, MetadataTokenCountDisagreesWithFile) {
  test::write_bytes(metadata_, "test-tokenizer|2\n5\n5.00 T");
  const std::string message = open_error();
  EXPECT_NE(message.find("says 5 tokens"), std::string::npos) << message;
}

TEST_F(DamagedShard, MissingCompanionFiles) {
  fs::remove(metadata_);
  std::string message = open_error();
  EXPECT_NE(message.find("shard_00000.ds.metadata is missing"), std::string::npos) << message;
  fs::remove(index_);
  message = open_error();
  EXPECT_NE(message.find("shard_00000.ds.index is missing"), std::string::npos) << message;
}

TEST_F(DamagedShard, IndexWithoutTokens) {
  fs::copy_file(index_, dir_ / "other.ds.index");
  EXPECT_NE(open_error().find("has no other.ds beside it"), std::string::npos);
}

TEST(Shards, MixedWidthsAndEmptyFolders) {
  TempDir dir, empty;
  test::write_shards(dir.path(), test::make_documents(3, 2, 5, kEos), 2, 1000, "a");
  test::write_shards(dir.path(), test::make_documents(3, 2, 5, kEos), 4, 1000, "b");
  EXPECT_NE(expect_error<FormatError>([&] { open_datatrove(dir.path()); }).find("one width per data source"),
            std::string::npos);
  EXPECT_NE(expect_error<UsageError>([&] { open_datatrove(empty.path()); }).find("holds no *.ds files"), std::string::npos);
  EXPECT_NE(expect_error<UsageError>([&] { open_datatrove(empty / "nope"); }).find("does not exist"), std::string::npos);
}

TEST(ShardWriter, RefusesExistingShardsAndOversizedTokens) {
  TempDir dir;
  test::write_shards(dir.path(), test::make_documents(3, 2, 5, kEos));
  EXPECT_NE(error_of([&] { test::write_shards(dir.path(), {{1, 2}}); }).find("already holds shards"), std::string::npos);
  ShardWriter writer(ShardWriterOptions{dir / "other", "shard", 2, "t", 100});
  EXPECT_THROW(writer.add_document(std::vector<uint32_t>{1, 70000}), UsageError);
}

TEST(ShardWriter, UnfinishedShardLeavesNoFiles) {
  TempDir dir;
  {
    ShardWriter writer(ShardWriterOptions{dir.path(), "shard", 2, "t", 10});
    for (int d = 0; d < 5; ++d) writer.add_document(std::vector<uint32_t>{1, 2, 3, 4, kEos});  // 2 full shards + 1 open
  }
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(dir.path())) names.push_back(entry.path().filename().string());
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"shard_00000.ds", "shard_00000.ds.index", "shard_00000.ds.metadata",
                                             "shard_00001.ds", "shard_00001.ds.index", "shard_00001.ds.metadata"}));
  EXPECT_EQ(open_datatrove(dir.path()).document_count(), 4u);
}

// ---------------------------------------------------------------------------------------------
// llm.c and raw streams.

std::string llmc_file(int32_t magic, int32_t version, const std::vector<uint32_t>& tokens, uint32_t width,
                      int32_t declared = -1) {
  std::string bytes(1024, '\0');
  const int32_t header[3] = {magic, version, declared >= 0 ? declared : static_cast<int32_t>(tokens.size())};
  std::memcpy(bytes.data(), header, sizeof header);
  for (uint32_t token : tokens) bytes.append(reinterpret_cast<const char*>(&token), width);
  return bytes;
}

TEST(Shards, ReadsLlmcGpt2AndLlama3Files) {
  TempDir dir;
  // GPT-2 style: EOT (50256) before every document; as an ending separator this cuts
  // [EOT] [d1 EOT] [d2]... the same boundaries between documents.
  test::write_bytes(dir / "a_000000.bin", llmc_file(20240520, 1, {50256, 1, 2, 50256, 3, 4, 5}, 2));
  const ShardSet gpt2 = ShardSet::open(dir.path(), ShardSetOptions{ShardFormat::llmc, 0, {50256, true}});
  EXPECT_EQ(gpt2.token_width(), 2u);
  EXPECT_EQ(read_all(gpt2), (std::vector<Document>{{50256}, {1, 2, 50256}, {3, 4, 5}}));

  TempDir llama;
  // Llama-3 style: BOS (128000) starts every document.
  test::write_bytes(llama / "b_000000.bin", llmc_file(20240801, 7, {128000, 10, 11, 128000, 12}, 4));
  const ShardSet set = ShardSet::open(llama.path(), ShardSetOptions{ShardFormat::llmc, 0, {128000, false}});
  EXPECT_EQ(set.token_width(), 4u);
  EXPECT_EQ(read_all(set), (std::vector<Document>{{128000, 10, 11}, {128000, 12}}));
}

TEST(Shards, RejectsDamagedLlmcFiles) {
  TempDir dir;
  const auto open = [&] { ShardSet::open(dir / "x.bin", ShardSetOptions{ShardFormat::llmc, 0, {0, true}}); };
  test::write_bytes(dir / "x.bin", llmc_file(12345, 1, {1, 2}, 2));
  EXPECT_NE(expect_error<FormatError>(open).find("magic 12345"), std::string::npos);
  test::write_bytes(dir / "x.bin", llmc_file(20240520, 1, {1, 2, 3}, 2, 5));
  EXPECT_NE(expect_error<FormatError>(open).find("header says 5 tokens"), std::string::npos);
  test::write_bytes(dir / "x.bin", std::string(100, '\0'));
  EXPECT_NE(expect_error<FormatError>(open).find("smaller than the 1024-byte llm.c header"), std::string::npos);
  test::write_bytes(dir / "x.bin", llmc_file(20240520, 1, {1, 2}, 2));
  EXPECT_NE(expect_error<FormatError>([&] {
              ShardSet::open(dir / "x.bin", ShardSetOptions{ShardFormat::llmc, 4, {0, true}});
            }).find("configuration says 4-byte"),
            std::string::npos);
}

TEST(Shards, ReadsRawStreamsSplitAtEos) {
  TempDir dir;
  std::string u16, u32;
  for (uint32_t token : {1u, 2u, kEos, 3u, kEos, 4u}) {
    u16.append(reinterpret_cast<const char*>(&token), 2);
    u32.append(reinterpret_cast<const char*>(&token), 4);
  }
  test::write_bytes(dir / "train16.bin", u16);
  test::write_bytes(dir / "train32.bin", u32);
  const std::vector<Document> expected{{1, 2, kEos}, {3, kEos}, {4}};
  EXPECT_EQ(read_all(ShardSet::open(dir / "train16.bin", ShardSetOptions{ShardFormat::raw_u16, 0, {kEos, true}})),
            expected);
  EXPECT_EQ(read_all(ShardSet::open(dir / "train32.bin", ShardSetOptions{ShardFormat::raw_u32, 0, {kEos, true}})),
            expected);
  test::write_bytes(dir / "odd.bin", u16.substr(0, 5));
  EXPECT_NE(expect_error<FormatError>([&] {
              ShardSet::open(dir / "odd.bin", ShardSetOptions{ShardFormat::raw_u16, 0, {kEos, true}});
            }).find("not a multiple of the 2-byte token size"),
            std::string::npos);
  EXPECT_THROW(parse_shard_format("parquet"), UsageError);
  EXPECT_EQ(parse_shard_format("raw_u32"), ShardFormat::raw_u32);
  EXPECT_EQ(token_width_for_vocab(65536), 2u);
  EXPECT_EQ(token_width_for_vocab(128256), 4u);
}

}  // namespace
}  // namespace ssa::data
