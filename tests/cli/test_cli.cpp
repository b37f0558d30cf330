// The `ssa` binary end to end: exit codes, one-line errors, nothing written on bad input,
// init -> score round trips.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <unistd.h>

#include "ssa/model/model_folder.h"
#include "ssa/model/tensor_file.h"
#include "ssa/util/error.h"
#include "support/run_command.h"
#include "support/temp_dir.h"

namespace ssa::test {
namespace {

namespace fs = std::filesystem;

const std::string kTiny = std::string(SSA_SOURCE_DIR) + "/configs/model/tiny.yaml";
// A small vocabulary keeps the logits file small.
const std::string kSmall = "model.vocab_size=300 model.bos_token_id=1 model.eos_token_id=2";

TEST(Cli, ConfigErrorsExitWithCode2AndNameTheKey) {
  TempDir dir;
  auto r = run_ssa("config show model.hiden_size=3");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("model.hiden_size"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("model.hidden_size"), std::string::npos) << r.output;

  const auto out = dir / "model";
  r = run_ssa("init --config " + kTiny + " --out " + out.string() + " model.num_heads=3");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("model.hidden_size"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(out)) << "nothing may be written on a configuration error";
  // One line of error.
  EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << r.output;
}

TEST(Cli, DumpConfigPrintsResolvedYamlAndWritesNothing) {
  TempDir dir;
  const auto out = dir / "model";
  auto r = run_ssa("init --config " + kTiny + " --out " + out.string() + " --dump-config attention.topk=7");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("topk: 7"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("hidden_size: 128"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(out));
}

TEST(Cli, OverridesMayFollowAConfigFileDirectly) {
  const std::string configs = std::string(SSA_SOURCE_DIR) + "/configs/";
  auto r = run_ssa("config show -c " + kTiny + " attention.topk=7 -c " + configs + "quickstart/cpu.yaml train.steps=3");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("topk: 7"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("steps: 3"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("seq_len: 256"), std::string::npos) << r.output;  // the second file was read
}

TEST(Cli, InitThenScoreFullAndSparse) {
  TempDir dir;
  const auto model = dir / "model";
  auto r = run_ssa("init --config " + kTiny + " --out " + model.string() + " --seed 5 " + kSmall);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  ASSERT_TRUE(fs::exists(model / "config.json"));
  ASSERT_TRUE(fs::exists(model / "model.safetensors"));

  const auto tokens = dir / "tokens.txt";
  {
    std::ofstream t(tokens);
    for (int i = 0; i < 150; ++i) t << (i * 37 % 300) << (i + 1 < 150 ? " " : "\n");
    t << "5 6 7 8 9\n";
  }
  const auto full = dir / "full.safetensors", sparse = dir / "sparse.safetensors";
  r = run_ssa("score --model " + model.string() + " --tokens " + tokens.string() + " --attention full --out " +
              full.string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("perplexity"), std::string::npos) << r.output;
  r = run_ssa("score --model " + model.string() + " --tokens " + tokens.string() +
              " --attention sparse --topk 2 --dump-selection --out " + sparse.string());
  ASSERT_EQ(r.exit_code, 0) << r.output;

  auto f = model::read_tensor_file(full);
  auto s = model::read_tensor_file(sparse);
  ASSERT_EQ(f["logits"].sizes().vec(), (std::vector<int64_t>{2, 150, 300}));
  // The short sequence is zero-padded.
  EXPECT_EQ(f["logits"][1].narrow(0, 5, 145).abs().max().item<float>(), 0.0f);
  // Within the first topk*block_size = 32 tokens sparse attention is full attention; later not.
  EXPECT_TRUE(torch::allclose(f["logits"][0].narrow(0, 0, 32), s["logits"][0].narrow(0, 0, 32), 1e-4, 1e-5));
  EXPECT_FALSE(torch::allclose(f["logits"][0].narrow(0, 100, 50), s["logits"][0].narrow(0, 100, 50), 1e-4, 1e-5));
  // Selections: 2 layers, group selection over 2 kv heads, K = 2 blocks; -1 padding.
  ASSERT_TRUE(s.count("selection.layer0") && s.count("selection.layer1"));
  auto sel = s["selection.layer1"];
  EXPECT_EQ(sel.sizes().vec(), (std::vector<int64_t>{2, 150, 2, 2}));
  EXPECT_EQ(sel.scalar_type(), torch::kInt32);
  EXPECT_EQ(sel[0][149][0][0].item<int>(), 149 / 16);  // the current block comes first
  EXPECT_EQ(sel[0][3][0][1].item<int>(), -1);           // token 3 has no past block
  EXPECT_EQ(sel[1][10][1][0].item<int>(), -1);          // padding of the short sequence
}

TEST(Cli, ScoreRejectsBadInputWithOneLineErrors) {
  TempDir dir;
  const auto model = dir / "model";
  ASSERT_EQ(run_ssa("init --config " + kTiny + " --out " + model.string() + " " + kSmall).exit_code, 0);
  const auto tokens = dir / "tokens.txt";
  std::ofstream(tokens) << "1 2 3\n4 five 6\n";
  auto r = run_ssa("score --model " + model.string() + " --tokens " + tokens.string());
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("tokens.txt:2"), std::string::npos) << r.output;

  std::ofstream(tokens) << "1 2 300\n";
  r = run_ssa("score --model " + model.string() + " --tokens " + tokens.string());
  EXPECT_EQ(r.exit_code, 2) << r.output;

  r = run_ssa("score --model " + (dir / "absent").string() + " --tokens " + tokens.string());
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("absent"), std::string::npos) << r.output;

  // A truncated weight file is a format error naming the file.
  std::ofstream(tokens) << "1 2 3\n";
  const auto weights = model / "model.safetensors";
  ASSERT_EQ(::truncate(weights.c_str(), fs::file_size(weights) / 2), 0);  // not fs::resize_file: see io/remove_tree.h
  r = run_ssa("score --model " + model.string() + " --tokens " + tokens.string());
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("model.safetensors"), std::string::npos) << r.output;
}

TEST(Cli, SavedFolderLoadsBackIdentically) {
  TempDir dir;
  const auto model = dir / "model";
  ASSERT_EQ(run_ssa("init --config " + kTiny + " --out " + model.string() + " --seed 9 " + kSmall).exit_code, 0);
  auto a = model::load_model_folder(model);
  const auto copy = dir / "copy";
  model::save_model_folder(a.model, a.attention, copy);
  auto b = model::load_model_folder(copy);
  auto pa = a.model->named_parameters(), pb = b.model->named_parameters();
  ASSERT_EQ(pa.size(), pb.size());
  for (const auto& item : pa) EXPECT_TRUE(torch::equal(item.value(), pb[item.key()])) << item.key();
  EXPECT_EQ(b.attention.topk, 4);
  EXPECT_EQ(b.model->config().gate, "headwise");
  // Saving over an existing folder replaces it.
  model::save_model_folder(b.model, b.attention, copy, torch::kBFloat16);
  EXPECT_EQ(model::load_model_folder(copy).stored_dtype, "bfloat16");
  // A folder that is not a model folder is never replaced (replacing deletes its contents).
  const auto other = dir / "notes";
  fs::create_directories(other);
  std::ofstream(other / "keep.txt") << "precious";
  EXPECT_THROW(model::save_model_folder(b.model, b.attention, other), UsageError);
  EXPECT_TRUE(fs::exists(other / "keep.txt"));
  auto r = run_ssa("init --config " + kTiny + " --out " + other.string());
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_TRUE(fs::exists(other / "keep.txt"));
}

}  // namespace
}  // namespace ssa::test
