// `ssa score`: negative log-likelihood and perplexity of token sequences under full or sparse
// attention, optionally writing the logits and the block selections.
#include <CLI/CLI.hpp>
#include <cmath>
#include <fmt/format.h>
#include <fstream>
#include <memory>
#include <sstream>

#include "ssa/attention/attention_spec.h"
#include "ssa/cli/command.h"
#include "ssa/model/model_folder.h"
#include "ssa/model/tensor_file.h"
#include "ssa/util/error.h"

namespace ssa::cli {
namespace {

struct ScoreOptions {
  std::string model;
  std::string tokens;
  std::string attention = "";
  int64_t block_size = 0;
  int64_t topk = 0;
  std::string selection;
  std::string out;
  bool dump_selection = false;
  std::string device = "cpu";
  std::string dtype = "float32";
  int64_t query_chunk = 512;
};

std::vector<std::vector<int64_t>> read_token_lines(const std::string& path, int64_t vocab_size) {
  std::ifstream in(path);
  if (!in) throw UsageError(fmt::format("cannot open token file {}", path));
  std::vector<std::vector<int64_t>> sequences;
  std::string line;
  for (int64_t line_number = 1; std::getline(in, line); ++line_number) {
    std::istringstream words(line);
    std::vector<int64_t> ids;
    for (std::string word; words >> word;) {
      size_t used = 0;
      int64_t id = -1;
      try {
        id = std::stoll(word, &used);
      } catch (const std::exception&) {
        used = 0;
      }
      if (used != word.size() || id < 0 || id >= vocab_size) {
        throw UsageError(fmt::format("{}:{}: '{}' is not a token id in [0, {})", path, line_number, word, vocab_size));
      }
      ids.push_back(id);
    }
    if (!ids.empty()) sequences.push_back(std::move(ids));
  }
  if (sequences.empty()) throw UsageError(fmt::format("{} holds no token sequences", path));
  return sequences;
}

void run_score(const ScoreOptions& o) {
  torch::NoGradGuard no_grad;
  const torch::Device device(o.device);
  auto loaded = model::load_model_folder(o.model, device, model::parse_dtype(o.dtype));
  auto& m = loaded.model;
  m->eval();
  auto attention = loaded.attention;
  if (!o.attention.empty()) attention.inference = o.attention;
  if (o.block_size > 0) attention.block_size = o.block_size;
  if (o.topk > 0) attention.topk = o.topk;
  if (!o.selection.empty()) attention.selection = o.selection;

  model::ForwardOptions options;
  options.mode = attention::parse_mode(attention.inference);
  options.sparse = attention::sparse_spec(attention);
  options.query_chunk = o.query_chunk;
  options.keep_selections = o.dump_selection;
  if (o.dump_selection && options.mode != attention::Mode::kSparse) {
    throw UsageError("--dump-selection needs --attention sparse");
  }

  const auto sequences = read_token_lines(o.tokens, m->config().vocab_size);
  int64_t max_len = 0;
  for (const auto& s : sequences) max_len = std::max<int64_t>(max_len, s.size());
  const int64_t n = sequences.size(), vocab = m->config().vocab_size, layers = m->config().num_layers;
  const int64_t num_blocks = (max_len + attention.block_size - 1) / attention.block_size;
  const int64_t k = std::min(attention.topk, num_blocks);
  const int64_t h_sel = options.sparse.selection == attention::Selection::kGroup ? m->config().num_kv_heads
                                                                                  : m->config().num_heads;

  torch::Tensor all_logits = o.out.empty() ? torch::Tensor() : torch::zeros({n, max_len, vocab}, torch::kFloat32);
  std::vector<torch::Tensor> all_selections;
  if (o.dump_selection) {
    for (int64_t l = 0; l < layers; ++l) all_selections.push_back(torch::full({n, max_len, h_sel, k}, -1, torch::kInt32));
  }

  fmt::print("{:>8} {:>8} {:>12} {:>12}\n", "sequence", "tokens", "mean_nll", "perplexity");
  for (int64_t i = 0; i < n; ++i) {
    const auto& ids = sequences[i];
    const int64_t len = ids.size();
    auto tokens = torch::tensor(ids, torch::kInt64).unsqueeze(0).to(device);
    auto result = m->forward(tokens, options);
    auto logits = m->logits(result.hidden).to(torch::kFloat32)[0];  // [len, vocab]
    if (len > 1) {
      auto nll = torch::nn::functional::cross_entropy(logits.narrow(0, 0, len - 1), tokens[0].narrow(0, 1, len - 1));
      const double mean_nll = nll.item<double>();
      fmt::print("{:>8} {:>8} {:>12.6f} {:>12.4f}\n", i, len, mean_nll, std::exp(mean_nll));
    } else {
      fmt::print("{:>8} {:>8} {:>12} {:>12}\n", i, len, "n/a", "n/a");
    }
    if (all_logits.defined()) all_logits[i].narrow(0, 0, len).copy_(logits.cpu());
    for (int64_t l = 0; l < static_cast<int64_t>(all_selections.size()); ++l) {
      auto sel = result.selections[l][0].cpu();  // [len, h_sel, k_i]
      all_selections[l][i].narrow(0, 0, len).narrow(2, 0, sel.size(2)).copy_(sel);
    }
  }
  if (!o.out.empty()) {
    model::NamedTensors tensors{{"logits", all_logits}};
    for (int64_t l = 0; l < static_cast<int64_t>(all_selections.size()); ++l) {
      tensors.emplace_back(fmt::format("selection.layer{}", l), all_selections[l]);
    }
    model::write_tensor_file(o.out, tensors,
                             {{"attention", attention.inference},
                              {"block_size", std::to_string(attention.block_size)},
                              {"topk", std::to_string(attention.topk)},
                              {"selection", attention.selection}});
  } else if (o.dump_selection) {
    throw UsageError("--dump-selection writes into --out FILE.safetensors: give --out");
  }
}

const Registration kRegistration("score", [](CLI::App& app) {
  auto o = std::make_shared<ScoreOptions>();
  auto* cmd = app.add_subcommand("score", "Mean negative log-likelihood and perplexity of token sequences");
  cmd->add_option("--model,-m", o->model, "Model folder (config.json + model.safetensors)")->required();
  cmd->add_option("--tokens,-t", o->tokens, "File with one sequence of space-separated token ids per line")->required();
  cmd->add_option("--attention", o->attention, "full | sparse (default: the folder's inference mode)")
      ->check(CLI::IsMember({"full", "sparse"}));
  cmd->add_option("--block-size", o->block_size, "Sparse block size (default: the folder's)")->check(CLI::PositiveNumber);
  cmd->add_option("--topk", o->topk, "Blocks per query, current included (default: the folder's)")->check(CLI::PositiveNumber);
  cmd->add_option("--selection", o->selection, "group | head (default: the folder's)")->check(CLI::IsMember({"group", "head"}));
  cmd->add_option("--out", o->out, "Write float32 logits [sequences, max_len, vocab] to this safetensors file");
  cmd->add_flag("--dump-selection", o->dump_selection, "Also write int32 selection.layer{L} [sequences, max_len, H_sel, K]");
  cmd->add_option("--device", o->device, "cpu | cuda | cuda:N");
  cmd->add_option("--dtype", o->dtype, "Compute dtype")->check(CLI::IsMember({"float32", "bfloat16", "float64"}));
  cmd->add_option("--query-chunk", o->query_chunk, "Queries per chunk on the reference attention path")->check(CLI::PositiveNumber);
  cmd->callback([o] { run_score(*o); });
});

}  // namespace
}  // namespace ssa::cli
