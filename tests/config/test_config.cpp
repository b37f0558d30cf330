#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <filesystem>
#include <fstream>
#include <sstream>

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
