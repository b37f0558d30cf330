// tokenize_corpus (`ssa data tokenize` without the command line), with a byte-level encoder:
// inputs of every kind, determinism across thread counts, shuffling, malformed lines, and runs
// that fail or are killed half-way.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include <atomic>
#include <map>
#include <nlohmann/json.hpp>

#include "data/shard_fixture.h"
#include "ssa/data/shard_set.h"
#include "ssa/data/tokenize_corpus.h"
#include "ssa/util/error.h"
#include "support/temp_dir.h"

namespace ssa::data {
namespace {

namespace fs = std::filesystem;
using test::TempDir;

constexpr uint32_t kEos = 256, kBos = 257;

std::vector<uint32_t> byte_encoder(std::string_view text) { return std::vector<uint32_t>(text.begin(), text.end()); }

std::string decode(const std::vector<uint32_t>& ids) {
  std::string text;
  for (uint32_t id : ids) {
    if (id < 256) text.push_back(static_cast<char>(id));
  }
  return text;
}

TokenizeOptions options_for(const fs::path& input, const fs::path& out) {
  TokenizeOptions options;
  options.inputs = {input};
  options.output_folder = out;
  options.eos_id = kEos;
  options.token_width = 2;
  options.tokenizer_name = "bytes";
  return options;
}

std::vector<std::string> texts_in(const fs::path& folder) {
  const ShardSet set = ShardSet::open(folder, ShardSetOptions{});
  std::vector<std::string> texts;
  for (uint64_t d = 0; d < set.document_count(); ++d) {
    const auto document = set.document(d);
    std::vector<uint32_t> ids(document.length);
    document.shard->copy_tokens(document.begin, document.length, ids.data());
    EXPECT_EQ(ids.back(), kEos) << "every document ends with EOS";
    texts.push_back(decode(ids));
  }
  return texts;
}

// Every file of the folder (top level), name -> bytes.
std::map<std::string, std::string> folder_bytes(const fs::path& folder) {
  std::map<std::string, std::string> files;
  for (const auto& entry : fs::directory_iterator(folder)) files[entry.path().filename().string()] = test::read_bytes(entry.path());
  return files;
}

std::string jsonl_of(const std::vector<std::string>& texts) {
  std::string lines;
  for (const auto& text : texts) lines += nlohmann::json{{"id", lines.size()}, {"text", text}}.dump() + "\n";
  return lines;
}

std::vector<std::string> sample_texts(std::size_t count) {
  std::vector<std::string> texts;
  for (std::size_t k = 0; k < count; ++k) texts.push_back("document " + std::to_string(k) + std::string(k % 37, 'x') + "\n\"end\"");
  return texts;
}

TEST(Tokenize, ReadsJsonlGzipZstdAndTextInSortedOrder) {
  TempDir in, out;
  fs::create_directories(in / "sub");
  test::write_bytes(in / "b.jsonl", jsonl_of({"b1", "b2"}) + "\n   \n");  // blank lines are skipped
  {
    const std::string text = jsonl_of({"g1", "g2"});
    gzFile gz = gzopen((in / "sub" / "c.jsonl.gz").c_str(), "wb");
    gzwrite(gz, text.data(), static_cast<unsigned>(text.size()));
    gzclose(gz);
  }
  {
    const std::string text = jsonl_of({"z1"});
    std::string compressed(ZSTD_compressBound(text.size()), '\0');
    compressed.resize(ZSTD_compress(compressed.data(), compressed.size(), text.data(), text.size(), 3));
    test::write_bytes(in / "sub" / "d.jsonl.zst", compressed);
  }
  test::write_bytes(in / "a.rst.txt", "whole file\nis one document\n");
  test::write_bytes(in / "ignored.md", "not an input");
  const auto summary = tokenize_corpus(options_for(in.path(), out.path()), byte_encoder);
  EXPECT_EQ(summary.input_files, 4u);
  EXPECT_EQ(summary.documents, 6u);
  EXPECT_EQ(texts_in(out.path()),
            (std::vector<std::string>{"whole file\nis one document\n", "b1", "b2", "g1", "g2", "z1"}));
}

TEST(Tokenize, OutputIsIdenticalForAnyThreadCount) {
  TempDir in;
  test::write_bytes(in / "corpus.jsonl", jsonl_of(sample_texts(10000)));
  std::map<std::string, std::string> first;
  for (unsigned threads : {1u, 2u, 3u, 8u}) {
    SCOPED_TRACE(threads);
    TempDir out;
    auto options = options_for(in / "corpus.jsonl", out.path());
    options.threads = threads;
    options.shard_tokens = 50000;
    const auto summary = tokenize_corpus(options, byte_encoder);
    EXPECT_GT(summary.shards.size(), 3u);
    const auto bytes = folder_bytes(out.path());
    if (first.empty()) {
      first = bytes;
      EXPECT_EQ(texts_in(out.path()).at(9999), sample_texts(10000).at(9999));
    } else {
      EXPECT_TRUE(bytes == first) << "thread count changed the output";
    }
  }
}

TEST(Tokenize, BosEosAndUint32Tokens) {
  TempDir in, out;
  test::write_bytes(in / "c.jsonl", jsonl_of({"ab"}));
  auto options = options_for(in / "c.jsonl", out.path());
  options.bos_id = kBos;
  options.token_width = 4;
  tokenize_corpus(options, [](std::string_view text) {
    std::vector<uint32_t> ids;
    for (char c : text) ids.push_back(100000 + static_cast<unsigned char>(c));
    return ids;
  });
  const ShardSet set = ShardSet::open(out.path(), ShardSetOptions{});
  EXPECT_EQ(set.token_width(), 4u);
  std::vector<uint32_t> ids(4);
  set.shards()[0].copy_tokens(0, 4, ids.data());
  EXPECT_EQ(ids, (std::vector<uint32_t>{kBos, 100000 + 'a', 100000 + 'b', kEos}));
}

TEST(Tokenize, ShuffleIsDeterministicAndKeepsEveryDocument) {
  TempDir in, out1, out2, out3;
  const auto texts = sample_texts(3000);
  test::write_bytes(in / "c.jsonl", jsonl_of(texts));
  auto options = options_for(in / "c.jsonl", out1.path());
  options.shuffle_seed = 5;
  options.shard_tokens = 20000;
  options.threads = 2;
  tokenize_corpus(options, byte_encoder);
  options.output_folder = out2.path();
  options.threads = 1;
  tokenize_corpus(options, byte_encoder);
  options.output_folder = out3.path();
  options.shuffle_seed = 6;
  tokenize_corpus(options, byte_encoder);

  EXPECT_TRUE(folder_bytes(out1.path()) == folder_bytes(out2.path()));
  const auto shuffled = texts_in(out1.path());
  EXPECT_NE(shuffled, texts);
  EXPECT_NE(shuffled, texts_in(out3.path()));
  auto sorted = shuffled, expected = texts;
  std::sort(sorted.begin(), sorted.end());
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(sorted, expected);
  for (const auto& entry : fs::directory_iterator(out1.path())) {
    EXPECT_FALSE(entry.is_directory()) << "the shuffle staging folder must be gone: " << entry.path();
  }
}

TEST(Tokenize, MalformedLinesNameFileAndLine) {
  TempDir in;
  const auto run = [&](const std::string& content, bool skip_bad) {
    TempDir out;
    test::write_bytes(in / "bad.jsonl", content);
    auto options = options_for(in / "bad.jsonl", out.path());
    options.skip_bad = skip_bad;
    options.threads = 2;
    return tokenize_corpus(options, byte_encoder);
  };
  const std::string file = (in / "bad.jsonl").string();
  const auto message = [&](const std::string& content) {
    try {
      run(content, false);
    } catch (const UsageError& e) {
      return std::string(e.what());
    }
    return std::string("(no UsageError)");
  };
  EXPECT_NE(message("{\"text\": \"ok\"}\n{\"text\": \"broken\n").find(file + ":2: not valid JSON"), std::string::npos);
  EXPECT_NE(message("{\"text\": \"ok\"}\n\n{\"body\": \"x\"}\n").find(file + ":3: no \"text\" field"), std::string::npos);
  EXPECT_NE(message("{\"text\": 5}\n").find(file + ":1: field \"text\" is a number"), std::string::npos);
  EXPECT_NE(message("[1, 2]\n").find(file + ":1: not a JSON object"), std::string::npos);

  const auto summary = run("{\"text\": \"a\"}\nnot json\n{\"text\": null}\n{\"text\": \"b\"}\n", true);
  EXPECT_EQ(summary.documents, 2u);
  EXPECT_EQ(summary.skipped, 2u);
}

TEST(Tokenize, OtherTextField) {
  TempDir in, out;
  test::write_bytes(in / "c.jsonl", "{\"content\": \"hello\"}\n");
  auto options = options_for(in / "c.jsonl", out.path());
  options.text_field = "content";
  tokenize_corpus(options, byte_encoder);
  EXPECT_EQ(texts_in(out.path()), (std::vector<std::string>{"hello"}));
}

TEST(Tokenize, FailureLeavesOnlyCompleteShards) {
  TempDir in, out;
  test::write_bytes(in / "c.jsonl", jsonl_of(sample_texts(5000)));
  auto options = options_for(in / "c.jsonl", out.path());
  options.shard_tokens = 20000;
  options.threads = 3;
  std::atomic<int> calls{0};
  EXPECT_THROW(tokenize_corpus(options,
                               [&](std::string_view text) {
                                 if (++calls == 4500) throw std::runtime_error("encoder failed");
                                 return byte_encoder(text);
                               }),
               std::runtime_error);
  // Every shard left is complete and readable; nothing else (no temporary files) remains.
  const ShardSet set = ShardSet::open(out.path(), ShardSetOptions{});
  EXPECT_GT(set.shards().size(), 0u);
  EXPECT_LT(set.document_count(), 4500u);
  for (const auto& entry : fs::directory_iterator(out.path())) {
    EXPECT_EQ(entry.path().string().find(".tmp-"), std::string::npos) << entry.path();
  }
}

TEST(Tokenize, KilledRunLeavesNoCompleteLookingPartialShard) {
  TempDir in, out;
  test::write_bytes(in / "c.jsonl", jsonl_of(sample_texts(5000)));
  auto options = options_for(in / "c.jsonl", out.path());
  options.shard_tokens = 20000;
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    std::atomic<int> calls{0};
    try {
      tokenize_corpus(options, [&](std::string_view text) {
        if (++calls == 4500) ::kill(::getpid(), SIGKILL);  // no destructor, no cleanup runs
        return byte_encoder(text);
      });
    } catch (...) {
    }
    _exit(0);
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
  // Complete shards are readable; the one in progress exists only under a temporary name that
  // readers do not list.
  const ShardSet set = ShardSet::open(out.path(), ShardSetOptions{});
  EXPECT_LT(set.document_count(), 4500u);
  bool temporary_left = false;
  for (const auto& entry : fs::directory_iterator(out.path())) {
    temporary_left |= entry.path().string().find(".ds.tmp-") != std::string::npos;
  }
  EXPECT_TRUE(temporary_left) << "the killed shard in progress should remain only as a temporary file";
}

TEST(Tokenize, RejectsBadInputs) {
  TempDir in, out;
  EXPECT_THROW(tokenize_corpus(options_for(in / "missing.jsonl", out.path()), byte_encoder), UsageError);
  test::write_bytes(in / "data.csv", "a,b");
  EXPECT_THROW(tokenize_corpus(options_for(in / "data.csv", out.path()), byte_encoder), UsageError);
  auto options = options_for(in.path(), out.path());
  EXPECT_THROW(tokenize_corpus(options, byte_encoder), UsageError);  // a folder without inputs
}

}  // namespace
}  // namespace ssa::data
