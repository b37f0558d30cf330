#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "eval/tiny_model.h"
#include "ssa/data/shard_writer.h"
#include "ssa/model/model_folder.h"
#include "support/run_command.h"
#include "support/temp_dir.h"

namespace ssa::eval {
namespace {

const std::string kTokenizer = std::string(SSA_SOURCE_DIR) + "/tests/fixtures/tokenizer/tiny_gpt2.json";

// A tiny random model over the 274 ids of the tiny GPT-2 tokenizer fixture.
std::string save_tiny_model(const test::TempDir& dir) {
  auto m = test::tiny_model(41, 274);
  config::AttentionConfig attention;
  attention.block_size = 8;
  attention.topk = 2;
  const auto folder = dir / "model";
  model::save_model_folder(m, attention, folder);
  return folder.string();
}

std::string text_sample(size_t bytes) {
  std::ifstream in(std::string(SSA_SOURCE_DIR) + "/tests/fixtures/tokenizer/text.txt");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return text.substr(0, bytes);
}

// ppl-shards scores the documents a training run holds out: with 2 of 4 held out, documents 1
// and 3 (data/validation_split.h), exactly as ppl-tokens scores them from a token-id file.
TEST(EvalCommand, ShardPerplexityScoresTheHeldOutDocuments) {
  test::TempDir dir;
  const auto model = save_tiny_model(dir);
  const std::vector<std::vector<uint32_t>> documents = {
      {1, 2, 3, 4, 5, 6, 7, 8}, {9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19}, {20, 21, 22}, {30, 31, 32, 33, 34, 35}};
  data::ShardWriter writer(data::ShardWriterOptions{dir / "shards", "shard", 2, "test-tokenizer"});
  for (const auto& d : documents) writer.add_document(d);
  writer.finish();
  std::ofstream(dir / "held_out.txt") << "9 10 11 12 13 14 15 16 17 18 19\n30 31 32 33 34 35\n";
  const auto out = dir / "results.json";
  auto r = test::run_ssa("eval --model " + model + " --attention full --max-length 8 --shard-documents 2 --tasks ppl-shards:" +
                         (dir / "shards").string() + ",ppl-tokens:" + (dir / "held_out.txt").string() +
                         " --out " + out.string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  std::ifstream in(out);
  const auto full = nlohmann::json::parse(in)["runs"][0];
  EXPECT_EQ(full["ppl_shards"]["shards"]["tokens"], 17);
  EXPECT_EQ(full["ppl_shards"]["shards"]["documents"], 2);
  EXPECT_DOUBLE_EQ(full["ppl_shards"]["shards"]["nll"].get<double>(), full["ppl_tokens"]["held_out"]["nll"].get<double>());

  auto all = test::run_ssa("eval --model " + model + " --attention full --shard-documents 4 --tasks ppl-shards:" +
                           (dir / "shards").string());
  EXPECT_EQ(all.exit_code, 2) << all.output;
  EXPECT_NE(all.output.find("4 held-out documents asked of a folder of 4"), std::string::npos) << all.output;
}

TEST(EvalCommand, EveryTaskUnderEverySettingToJsonAndMarkdown) {
  test::TempDir dir;
  const auto model = save_tiny_model(dir);
  std::ofstream(dir / "text.txt") << text_sample(1500);
  std::ofstream(dir / "items.jsonl") << "{\"query\": \"The bridge\", \"choices\": [\"fell\", \"stood firm\"], \"gold\": 1}\n"
                                        "{\"query\": \"The river\", \"choices\": [\"rose\", \"sang\", \"flew\"], \"gold\": 0}\n"
                                        "{\"query\": \"By noon\", \"choices\": [\"it rained\", \"water rose\"], \"gold\": 1}\n";
  std::ofstream(dir / "tokens.txt") << "1 2 3 4 5 6 7 8 9 10 11 12\n5 6 7\n";
  const auto out = dir / "results.json";
  auto r = test::run_ssa("eval --model " + model + " --tokenizer " + kTokenizer + " --attention full,sparse" +
                         " --receptive-fields 16,32 --block-size 8 --max-length 64 --stride 32" +
                         " --tasks ppl-text:" + (dir / "text.txt").string() + ",ppl-tokens:" + (dir / "tokens.txt").string() +
                         ",pg19:" + (dir / "text.txt").string() + ",stats,mc:" + (dir / "items.jsonl").string() +
                         ",niah --pg19-contexts 32,64 --pg19-stride 8 --stats-tokens 100 --shots 1 --seeds 1,2" +
                         " --haystack " + (dir / "text.txt").string() +
                         " --niah-lengths 400,500 --niah-depths 0,0.5,1 --niah-cases 1 --out " + out.string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("| run |"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("| sparse-32 |"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("depth \\ length"), std::string::npos) << r.output;
  std::ifstream in(out);
  const auto results = nlohmann::json::parse(in);
  ASSERT_EQ(results["runs"].size(), 3u);  // full, sparse-16, sparse-32
  const auto& full = results["runs"][0];
  EXPECT_EQ(full["label"], "full");
  EXPECT_GT(full["ppl_text"]["text"]["word_perplexity"].get<double>(), 1.0);
  EXPECT_EQ(full["ppl_tokens"]["tokens"]["tokens"], 15);
  EXPECT_EQ(full["pg19"]["text"]["perplexity"].size(), 2u);
  EXPECT_EQ(full["stats"]["receptive_fields"].size(), 2u);  // full attention against each receptive field
  EXPECT_EQ(full["stats"]["receptive_fields"]["16"]["layers"].size(), 2u);
  EXPECT_EQ(full["mc"]["items"]["per_seed"].size(), 2u);
  EXPECT_EQ(full["niah"]["cells"].size(), 6u);
  const auto& sparse = results["runs"][1];
  EXPECT_EQ(sparse["topk"], 2);
  const double kept = sparse["stats"]["receptive_fields"]["16"]["mean"]["sparsity"].get<double>();
  EXPECT_GT(kept, 0.0);
  EXPECT_LT(kept, 1.0);  // 2 blocks of 8 out of up to 100 tokens drop attention mass
  // Sparse inference with 2 of 8 blocks changes the perplexity.
  EXPECT_NE(sparse["ppl_text"]["text"]["nll"].get<double>(), full["ppl_text"]["text"]["nll"].get<double>());
}

TEST(EvalCommand, RejectsBadTasksAndReceptiveFields) {
  test::TempDir dir;
  const auto model = save_tiny_model(dir);
  EXPECT_EQ(test::run_ssa("eval --model " + model + " --tasks bogus").exit_code, 2);
  EXPECT_EQ(test::run_ssa("eval --model " + model + " --tasks stats:x --receptive-fields 12 --block-size 8").exit_code, 2);
  EXPECT_EQ(test::run_ssa("eval --model " + model + " --tasks niah --tokenizer " + kTokenizer).exit_code, 2);
}

TEST(GenerateCommand, CachedAndRecomputedGenerationAgree) {
  test::TempDir dir;
  const auto model = save_tiny_model(dir);
  for (const std::string attention : {"full", "sparse"}) {
    const std::string base = "generate --model " + model + " --prompt-ids 5,6,7,8,9,10,11,12,13,14,15 --max-new-tokens 30" +
                             " --ignore-eos --attention " + attention + " --temperature 0.7 --top-p 0.9 --seed 4";
    auto cached = test::run_ssa(base);
    auto recomputed = test::run_ssa(base + " --no-cache");
    ASSERT_EQ(cached.exit_code, 0) << cached.output;
    EXPECT_EQ(cached.output, recomputed.output);
    EXPECT_EQ(std::count(cached.output.begin(), cached.output.end(), ' '), 29);  // 30 ids
  }
  auto text = test::run_ssa("generate --model " + model + " --tokenizer " + kTokenizer +
                            " --prompt 'The bridge' --max-new-tokens 5 --greedy --ignore-eos");
  ASSERT_EQ(text.exit_code, 0) << text.output;
  EXPECT_EQ(text.output.rfind("The bridge", 0), 0u);
  EXPECT_EQ(test::run_ssa("generate --model " + model + " --prompt-ids 999").exit_code, 2);
}

TEST(McConvertCommand, WritesItems) {
  test::TempDir dir;
  std::ofstream(dir / "arc.jsonl") << R"({"question": "Q?", "choices": {"text": ["a", "b"], "label": ["1", "2"]}, "answerKey": "2"})"
                                   << "\n";
  auto r = test::run_ssa("mc-convert --format arc --in " + (dir / "arc.jsonl").string() + " --out " +
                         (dir / "items.jsonl").string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  std::ifstream in(dir / "items.jsonl");
  std::string line;
  std::getline(in, line);
  EXPECT_EQ(nlohmann::json::parse(line)["gold"], 1);
  std::ofstream(dir / "bad.jsonl") << R"({"question": "Q?"})" << "\n";
  EXPECT_EQ(test::run_ssa("mc-convert --format arc --in " + (dir / "bad.jsonl").string() + " --out " +
                          (dir / "x.jsonl").string()).exit_code, 2);
}

}  // namespace
}  // namespace ssa::eval
