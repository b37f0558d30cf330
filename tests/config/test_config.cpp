#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <tuple>

#include "ssa/config/loader.h"
#include "ssa/config/schema.h"
#include "ssa/util/error.h"
#include "support/temp_dir.h"

namespace ssa::config {
namespace {

namespace fs = std::filesystem;

fs::path write(const test::TempDir& dir, const std::string& name, const std::string& text) {
  auto path = dir / name;
  std::ofstream(path) << text;
  return path;
}

// The ConfigError message for loading `files` with `overrides`; fails the test if none is thrown.
std::string error_of(const std::vector<std::string>& files, const std::vector<std::string>& overrides) {
  try {
    load(files, overrides);
  } catch (const ConfigError& e) {
    return e.what();
  }
  ADD_FAILURE() << "no ConfigError";
  return "";
}

TEST(Config, DefaultsAreStockLlama32_1B) {
  Config c = load({}, {});
  EXPECT_EQ(c.model.hidden_size, 2048);
  EXPECT_EQ(c.model.num_layers, 16);
  EXPECT_EQ(c.model.num_heads, 32);
  EXPECT_EQ(c.model.num_kv_heads, 8);
  EXPECT_EQ(c.model.vocab_size, 128256);
  EXPECT_EQ(c.attention.block_size, 16);
  EXPECT_EQ(c.attention.topk, 16);
  EXPECT_EQ(c.ssa.p_full, 0.5);
  EXPECT_EQ(c.ssa.align.alpha, 10.0);
}

TEST(Config, LaterFilesWinAndOverridesWinLast) {
  test::TempDir dir;
  auto a = write(dir, "a.yaml", "model:\n  num_layers: 4\n  hidden_size: 256\nattention:\n  topk: 8\n");
  auto b = write(dir, "b.yaml", "model:\n  num_layers: 6\n");
  Config c = load({a.string(), b.string()}, {"attention.topk=3", "model.rope_scaling.rope_type=linear",
                                             "model.rope_scaling.factor=2"});
  EXPECT_EQ(c.model.num_layers, 6);     // b wins over a
  EXPECT_EQ(c.model.hidden_size, 256);  // a's other keys survive the merge
  EXPECT_EQ(c.attention.topk, 3);       // override wins last
  EXPECT_EQ(c.model.rope_scaling.rope_type, "linear");
  EXPECT_DOUBLE_EQ(c.model.rope_scaling.factor, 2.0);
}

TEST(Config, IncludedFilesMergeFirstRelativeToTheFile) {
  test::TempDir dir;
  fs::create_directories(dir / "base");
  write(dir, "base/model.yaml", "model:\n  num_layers: 4\n  hidden_size: 256\n");
  write(dir, "base/train.yaml", "include: model.yaml\nmodel:\n  num_layers: 5\ntrain:\n  steps: 7\n");
  auto top = write(dir, "top.yaml", "include: [base/train.yaml]\nmodel:\n  num_layers: 6\n");
  Config c = load({top.string()}, {"train.steps=9"});
  EXPECT_EQ(c.model.hidden_size, 256);  // from the include of the include
  EXPECT_EQ(c.model.num_layers, 6);     // the including file wins over what it includes
  EXPECT_EQ(c.train.steps, 9);          // overrides still win last

  auto cycle = write(dir, "cycle.yaml", "include: cycle.yaml\n");
  auto message = error_of({cycle.string()}, {});
  EXPECT_NE(message.find("includes itself"), std::string::npos) << message;
  auto missing = write(dir, "missing.yaml", "include: [nowhere.yaml]\n");
  message = error_of({missing.string()}, {});
  EXPECT_NE(message.find("nowhere.yaml"), std::string::npos) << message;
  EXPECT_NE(message.find("does not exist"), std::string::npos) << message;
  auto bad = write(dir, "bad-include.yaml", "include: {a: 1}\n");
  message = error_of({bad.string()}, {});
  EXPECT_NE(message.find("'include'"), std::string::npos) << message;
}

TEST(Config, NullGroupResetsToDefaults) {
  test::TempDir dir;
  auto a = write(dir, "a.yaml", "model:\n  rope_scaling:\n    rope_type: linear\n    factor: 4\n");
  auto b = write(dir, "b.yaml", "model:\n  rope_scaling: null\n");
  Config c = load({a.string(), b.string()}, {});
  EXPECT_EQ(c.model.rope_scaling.rope_type, "default");
  EXPECT_DOUBLE_EQ(c.model.rope_scaling.factor, 1.0);
}

TEST(Config, UnknownKeyNamesFullPathAndClosestKey) {
  auto message = error_of({}, {"model.hiden_size=3"});
  EXPECT_NE(message.find("'model.hiden_size'"), std::string::npos) << message;
  EXPECT_NE(message.find("did you mean 'model.hidden_size'"), std::string::npos) << message;

  test::TempDir dir;
  auto file = write(dir, "c.yaml", "attention:\n  blocksize: 8\n");
  message = error_of({file.string()}, {});
  EXPECT_NE(message.find("'attention.blocksize'"), std::string::npos) << message;
  EXPECT_NE(message.find("'attention.block_size'"), std::string::npos) << message;

  message = error_of({}, {"modle.num_layers=2"});
  EXPECT_NE(message.find("'modle'"), std::string::npos) << message;
}

TEST(Config, WrongTypesNameTheKey) {
  auto message = error_of({}, {"model.num_layers=four"});
  EXPECT_NE(message.find("'model.num_layers'"), std::string::npos) << message;
  EXPECT_NE(message.find("integer"), std::string::npos) << message;

  message = error_of({}, {"model.tie_embeddings=maybe"});
  EXPECT_NE(message.find("'model.tie_embeddings'"), std::string::npos) << message;

  message = error_of({}, {"attention.selection=random"});
  EXPECT_NE(message.find("'attention.selection'"), std::string::npos) << message;
  EXPECT_NE(message.find("group | head"), std::string::npos) << message;

  message = error_of({}, {"model.hidden_size=[1,2]"});
  EXPECT_NE(message.find("'model.hidden_size'"), std::string::npos) << message;

  message = error_of({}, {"model={a: 1}"});
  EXPECT_NE(message.find("'model.a'"), std::string::npos) << message;
}

TEST(Config, ImpossibleCombinationsNameTheKey) {
  struct Case {
    std::vector<std::string> overrides;
    std::string key;
  };
  const std::vector<Case> cases = {
      {{"model.hidden_size=100", "model.num_heads=32"}, "model.hidden_size"},
      {{"model.num_heads=32", "model.num_kv_heads=5"}, "model.num_heads"},
      {{"model.num_layers=0"}, "model.num_layers"},
      {{"model.vocab_size=-3"}, "model.vocab_size"},
      {{"model.head_dim=63"}, "model.head_dim"},
      {{"attention.block_size=0"}, "attention.block_size"},
      {{"attention.topk=0"}, "attention.topk"},
      {{"ssa.p_full=1.5"}, "ssa.p_full"},
      {{"model.rope_scaling.rope_type=llama3"}, "model.rope_scaling.original_max_position_embeddings"},
  };
  for (const auto& c : cases) {
    auto message = error_of({}, c.overrides);
    EXPECT_NE(message.find("'" + c.key + "'"), std::string::npos) << message;
  }
}

TEST(Config, MalformedYamlAndMissingFileAreErrors) {
  test::TempDir dir;
  auto bad = write(dir, "bad.yaml", "model:\n  num_layers: [1, 2\n");
  auto message = error_of({bad.string()}, {});
  EXPECT_NE(message.find("bad.yaml"), std::string::npos) << message;
  EXPECT_NE(message.find("line"), std::string::npos) << message;

  message = error_of({(dir / "absent.yaml").string()}, {});
  EXPECT_NE(message.find("does not exist"), std::string::npos) << message;

  auto list = write(dir, "list.yaml", "- 1\n- 2\n");
  message = error_of({list.string()}, {});
  EXPECT_NE(message.find("top level"), std::string::npos) << message;

  message = error_of({}, {"model.num_layers"});
  EXPECT_NE(message.find("section.key=value"), std::string::npos) << message;
}

TEST(Config, DumpRoundTripsEveryKey) {
  Config c = load({}, {"model.num_layers=3", "model.hidden_size=96", "model.num_heads=3", "model.num_kv_heads=1",
                       "model.rope_scaling.rope_type=yarn", "model.rope_scaling.factor=4",
                       "model.rope_scaling.attention_factor=1.5", "ssa.align.directions=commitment",
                       "attention.selection=head"});
  const std::string dumped = to_yaml(c);
  Config again = from_yaml(YAML::Load(dumped));
  EXPECT_EQ(to_yaml(again), dumped);
  EXPECT_EQ(config_hash(again), config_hash(c));
  EXPECT_NE(config_hash(c), config_hash(load({}, {})));
  ASSERT_TRUE(again.model.rope_scaling.attention_factor.has_value());
  EXPECT_DOUBLE_EQ(*again.model.rope_scaling.attention_factor, 1.5);
  // Every schema key appears in the dump.
  for (const auto& field : schema()) {
    const auto last = field.key.substr(field.key.rfind('.') + 1);
    EXPECT_NE(dumped.find(last + ":"), std::string::npos) << field.key;
  }
}

TEST(Config, EveryConfigFileInTheRepositoryLoads) {
  int count = 0;
  for (const auto& entry : fs::recursive_directory_iterator(fs::path(SSA_SOURCE_DIR) / "configs")) {
    if (entry.path().extension() != ".yaml") continue;
    ++count;
    EXPECT_NO_THROW(load({entry.path().string()}, {})) << entry.path();
  }
  EXPECT_GE(count, 4);
}

TEST(Config, ModelConfigsMatchThePaper) {
  const auto dir = fs::path(SSA_SOURCE_DIR) / "configs" / "model";
  Config stock = load({(dir / "llama3.2-1b.yaml").string()}, {});
  EXPECT_EQ(stock.model.num_kv_heads, 8);
  EXPECT_EQ(stock.model.gate, "none");
  EXPECT_EQ(stock.model.rope_scaling.rope_type, "llama3");
  Config paper = load({(dir / "ssa-paper-1b.yaml").string()}, {});
  EXPECT_EQ(paper.model.num_kv_heads, 2);
  EXPECT_EQ(paper.model.gate, "headwise");
  EXPECT_FALSE(paper.model.rope_scaling.enabled());
  Config small = load({(dir / "ssa-paper-300m.yaml").string()}, {});
  EXPECT_EQ(small.model.hidden_size, 1024);
  EXPECT_EQ(small.model.num_kv_heads, 1);
}

TEST(Config, PaperExperimentConfigsSayWhatTheirNamesSay) {
  const auto dir = fs::path(SSA_SOURCE_DIR) / "configs" / "paper";
  const auto at = [&](const std::string& name) { return load({(dir / name).string()}, {}); };
  Config base = at("pretrain-8k.yaml");
  EXPECT_EQ(base.train.seq_len, 8192);
  EXPECT_EQ(base.train.sequences_per_step() * base.train.seq_len, 384 * 8192);
  EXPECT_EQ(base.train.steps, 31800);
  EXPECT_DOUBLE_EQ(base.optim.lr, 1e-3);
  EXPECT_DOUBLE_EQ(base.optim.beta2, 0.95);
  EXPECT_EQ(base.model.num_kv_heads, 2);
  EXPECT_EQ(at("table1/full.yaml").ssa.method, "full");
  for (const auto& [name, method, topk] : std::vector<std::tuple<std::string, std::string, int64_t>>{
           {"moba-rf256", "sparse", 16}, {"moba-rf1024", "sparse", 64}, {"ssa-rf256", "ssa", 16}, {"ssa-rf1024", "ssa", 64}}) {
    Config c = at("table1/" + name + ".yaml");
    EXPECT_EQ(c.ssa.method, method) << name;
    EXPECT_EQ(c.attention.block_size * c.attention.topk, 16 * topk) << name;
    EXPECT_NE(c.train.run_dir.find(name), std::string::npos) << name;
  }

  Config reference = at("ablation-300m.yaml");
  EXPECT_EQ(reference.model.hidden_size, 1024);
  EXPECT_EQ(reference.ssa.method, "ssa");
  int ablations = 0;
  for (const auto& entry : fs::directory_iterator(dir / "table3")) {
    Config c = load({entry.path().string()}, {});
    const std::string name = entry.path().stem().string();
    ++ablations;
    EXPECT_EQ(c.model.hidden_size, 1024) << name;
    EXPECT_NE(c.train.run_dir.find(name), std::string::npos) << name;
    // Each ablation changes the reference in the one respect its name gives.
    int differences = (c.ssa.p_full != reference.ssa.p_full) + (c.ssa.mode_sampling != reference.ssa.mode_sampling) +
                      (c.ssa.align.directions != reference.ssa.align.directions) +
                      (c.ssa.align.alpha != reference.ssa.align.alpha) + (c.ssa.align.loss != reference.ssa.align.loss) +
                      (c.attention.block_size != reference.attention.block_size) +
                      (c.attention.topk != reference.attention.topk);
    EXPECT_GE(differences, 1) << name;
  }
  EXPECT_EQ(ablations, 14);
  EXPECT_DOUBLE_EQ(at("table3/p-full-0.25.yaml").ssa.p_full, 0.25);
  EXPECT_EQ(at("table3/p-full-per-layer.yaml").ssa.mode_sampling, "per_layer");
  EXPECT_EQ(at("table3/align-commitment-only.yaml").ssa.align.directions, "commitment");
  Config l2 = at("table3/l2-alpha-5.yaml");
  EXPECT_EQ(l2.ssa.align.loss, "l2");
  EXPECT_DOUBLE_EQ(l2.ssa.align.alpha, 5.0);
  Config rf = at("table3/rf-8x16.yaml");
  EXPECT_EQ(rf.attention.block_size, 8);
  EXPECT_EQ(rf.attention.topk, 16);
}

TEST(Config, ReplicationRunsDifferOnlyInMethodAndReceptiveField) {
  const auto dir = fs::path(SSA_SOURCE_DIR) / "configs" / "replication";
  Config base = load({(dir / "base.yaml").string()}, {});
  int runs = 0;
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (entry.path().stem() == "base") continue;
    ++runs;
    Config c = load({entry.path().string()}, {});
    const std::string name = entry.path().stem().string();
    // Identical data, order, model and optimisation: the comparison of issue 13 is fair.
    c.ssa = base.ssa;
    c.attention.topk = base.attention.topk;
    c.train.run_dir = base.train.run_dir;
    EXPECT_EQ(to_yaml(c), to_yaml(base)) << name;
  }
  EXPECT_EQ(runs, 5);
  EXPECT_EQ(load({(dir / "ssa-rf1024.yaml").string()}, {}).attention.topk * base.attention.block_size, 1024);
  EXPECT_EQ(load({(dir / "moba-rf256.yaml").string()}, {}).ssa.method, "sparse");
}

TEST(Config, ReferenceDocumentIsUpToDate) {
  std::ifstream in(fs::path(SSA_SOURCE_DIR) / "docs" / "configuration.md");
  ASSERT_TRUE(in) << "docs/configuration.md missing: generate it with `ssa config reference`";
  std::stringstream ss;
  ss << in.rdbuf();
  EXPECT_EQ(ss.str(), reference_markdown())
      << "docs/configuration.md is stale: regenerate it with `ssa config reference > docs/configuration.md`";
  for (const auto& field : schema()) EXPECT_FALSE(field.doc.empty()) << field.key;
}

}  // namespace
}  // namespace ssa::config
