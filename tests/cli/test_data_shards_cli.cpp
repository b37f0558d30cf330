// `ssa data tokenize|inspect` end to end: text files in, datatrove shards out, a summary and a
// decoded sample back; bad input is a one-line error with exit code 2 and no output folder.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "support/run_command.h"
#include "support/temp_dir.h"

namespace ssa::test {
namespace {

namespace fs = std::filesystem;

const std::string kTinyTokenizer = std::string(SSA_SOURCE_DIR) + "/tests/fixtures/tokenizer/tiny_gpt2.json";

TEST(DataShardsCli, TokenizeThenInspectDecodesTheDocument) {
  TempDir dir;
  fs::create_directories(dir / "text");
  std::ofstream(dir / "text" / "a.jsonl") << R"({"text": "hello world"})" << "\n" << R"({"text": "world hello"})" << "\n";
  std::ofstream(dir / "text" / "b.txt") << "hello hello";
  const auto out = dir / "shards";
  auto r = run_ssa("data tokenize --tokenizer " + kTinyTokenizer + " --input " + (dir / "text").string() + " --out " +
                   out.string() + " --name demo --threads 2");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(fs::exists(out / "demo_00000.ds")) << r.output;
  EXPECT_TRUE(fs::exists(out / "demo_00000.ds.index"));
  EXPECT_TRUE(fs::exists(out / "demo_00000.ds.metadata"));

  r = run_ssa("data inspect " + out.string() + " --tokenizer " + kTinyTokenizer + " --document 0");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("demo_00000.ds"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("hello world"), std::string::npos) << r.output;  // document 0, decoded
}

TEST(DataShardsCli, BadInputIsAOneLineErrorAndWritesNothing) {
  TempDir dir;
  const auto out = dir / "shards";
  auto r = run_ssa("data tokenize --tokenizer " + kTinyTokenizer + " --input " + (dir / "absent").string() +
                   " --out " + out.string());
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("absent"), std::string::npos) << r.output;
  EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << r.output;
  EXPECT_FALSE(fs::exists(out));

  r = run_ssa("data inspect " + (dir / "nothing-here").string());
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("nothing-here"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace ssa::test
