#include <gtest/gtest.h>

#include "ssa/eval/eval_settings.h"
#include "ssa/eval/results_table.h"
#include "ssa/util/error.h"

namespace ssa::eval {
namespace {

TEST(EvalSettings, ModesTimesReceptiveFields) {
  auto s = eval_settings({attention::Mode::kFull, attention::Mode::kSparse}, {256, 1024}, 16, attention::Selection::kHead);
  ASSERT_EQ(s.size(), 3u);
  EXPECT_EQ(s[0].label(), "full");
  EXPECT_FALSE(s[0].receptive_field.has_value());
  EXPECT_EQ(s[1].label(), "sparse-256");
  EXPECT_EQ(s[1].sparse.topk, 16);
  EXPECT_EQ(s[2].sparse.topk, 64);
  EXPECT_EQ(s[2].sparse.block_size, 16);
  EXPECT_EQ(s[2].sparse.selection, attention::Selection::kHead);
  EXPECT_THROW(eval_settings({attention::Mode::kSparse}, {100}, 16, attention::Selection::kGroup), UsageError);
  EXPECT_THROW(eval_settings({attention::Mode::kSparse}, {}, 16, attention::Selection::kGroup), UsageError);
}

TEST(ResultsTable, SummaryAndNiahMarkdown) {
  nlohmann::ordered_json results;
  results["runs"] = nlohmann::ordered_json::array();
  results["runs"].push_back({{"label", "full"}, {"summary", {{"wiki word_ppl", 15.125}, {"niah", 1.0}}}});
  results["runs"].push_back({{"label", "sparse-256"}, {"summary", {{"wiki word_ppl", 17.5}, {"sparsity", 0.7}}}});
  EXPECT_EQ(summary_markdown(results),
            "| run | wiki word_ppl | niah | sparsity |\n"
            "| --- | --- | --- | --- |\n"
            "| full | 15.1250 | 1.0000 | - |\n"
            "| sparse-256 | 17.5000 | - | 0.7000 |\n");
  nlohmann::ordered_json run;
  run["niah"]["cells"] = {{{"length", 8192}, {"depth", 0.5}, {"accuracy", 0.25}},
                          {{"length", 4096}, {"depth", 0.5}, {"accuracy", 1.0}},
                          {{"length", 4096}, {"depth", 0.0}, {"accuracy", 0.5}}};
  EXPECT_EQ(niah_markdown(run),
            "| depth \\ length | 4096 | 8192 |\n"
            "| --- | --- | --- |\n"
            "| 0% | 0.50 | - |\n"
            "| 50% | 1.00 | 0.25 |\n");
  EXPECT_EQ(niah_markdown(nlohmann::ordered_json::object()), "");
}

}  // namespace
}  // namespace ssa::eval
