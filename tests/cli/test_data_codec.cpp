// `ssa data encode|decode` end to end with the tiny GPT-2 style tokenizer of the tokenizer tests.
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>

#include "support/run_command.h"
#include "support/temp_dir.h"

namespace ssa::test {
namespace {

const std::string kTinyTokenizer = std::string(SSA_SOURCE_DIR) + "/tests/fixtures/tokenizer/tiny_gpt2.json";
const std::string kFixtureText = std::string(SSA_SOURCE_DIR) + "/tests/fixtures/tokenizer/text.txt";

TEST(DataCodecCli, EncodePrintsIdsOnOneLine) {
  TempDir dir;
  const auto text = dir / "text.txt";
  std::ofstream(text) << "hello world<|endoftext|>";
  const auto r = run_command(std::string(SSA_BINARY) + " data encode --tokenizer " + kTinyTokenizer + " < " +
                             text.string());
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(r.output, "263 268 273\n");
}

TEST(DataCodecCli, DecodeOfEncodeGivesBackTheText) {
  TempDir dir;
  const auto decoded = dir / "decoded.txt";
  const std::string ssa = std::string(SSA_BINARY) + " data ";
  const auto r = run_command(ssa + "encode --tokenizer " + kTinyTokenizer + " < " + kFixtureText + " | " + ssa +
                             "decode --tokenizer " + kTinyTokenizer + " > " + decoded.string() + " && cmp " +
                             decoded.string() + " " + kFixtureText);
  EXPECT_EQ(r.exit_code, 0) << r.output;
}

TEST(DataCodecCli, BadIdsAndFilesAreUsageErrors) {
  const std::string decode = "echo '263 999 268' | " + std::string(SSA_BINARY) + " data decode --tokenizer ";
  auto r = run_command(decode + kTinyTokenizer);
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("'999'"), std::string::npos) << r.output;
  EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << r.output;

  r = run_command("echo '263 -1' | " + std::string(SSA_BINARY) + " data decode --tokenizer " + kTinyTokenizer);
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("'-1'"), std::string::npos) << r.output;

  r = run_command("echo hi | " + std::string(SSA_BINARY) + " data encode --tokenizer /nonexistent/tokenizer.json");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("/nonexistent/tokenizer.json"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace ssa::test
