// `ssa generate`: text (or token ids) continued by the model with a KV cache, under full or
// block-sparse attention, greedy or sampled.
#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <memory>
#include <sstream>

#include "ssa/attention/attention_spec.h"
#include "ssa/cli/command.h"
#include "ssa/data/tokenizer.h"
#include "ssa/eval/generation.h"
#include "ssa/model/model_folder.h"
#include "ssa/util/error.h"

namespace ssa::cli {
namespace {

struct GenerateOptions {
  std::string model, tokenizer, prompt, prompt_ids;
  int64_t max_new_tokens = 64;
  std::string attention, selection;
  int64_t block_size = 0, topk = 0;
  bool greedy = false;
  double temperature = 1.0, top_p = 1.0;
  uint64_t seed = 0;
  bool no_cache = false, ignore_eos = false, print_ids = false;
  std::string device = "cpu", dtype = "float32";
};

std::vector<int64_t> parse_ids(const std::string& text, int64_t vocab) {
  std::vector<int64_t> ids;
  std::istringstream in(text);
  for (std::string word; std::getline(in, word, ' ');) {
    for (std::istringstream part(word); std::getline(part, word, ',');) {
      if (word.empty()) continue;
      size_t used = 0;
      int64_t id = -1;
      try {
        id = std::stoll(word, &used);
      } catch (const std::exception&) {
        used = 0;
      }
      if (used != word.size() || id < 0 || id >= vocab) {
        throw UsageError(fmt::format("--prompt-ids: '{}' is not a token id in [0, {})", word, vocab));
      }
      ids.push_back(id);
    }
  }
  return ids;
}

void run_generate(const GenerateOptions& o) {
  if (o.prompt.empty() == o.prompt_ids.empty()) throw UsageError("give exactly one of --prompt and --prompt-ids");
  if (!o.prompt.empty() && o.tokenizer.empty()) throw UsageError("--prompt needs --tokenizer FILE (tokenizer.json)");
  auto loaded = model::load_model_folder(o.model, torch::Device(o.device), model::parse_dtype(o.dtype));
  auto& m = loaded.model;
  m->eval();
  auto attention = loaded.attention;
  if (!o.attention.empty()) attention.inference = o.attention;
  if (o.block_size > 0) attention.block_size = o.block_size;
  if (o.topk > 0) attention.topk = o.topk;
  if (!o.selection.empty()) attention.selection = o.selection;

  std::optional<data::Tokenizer> tokenizer;
  if (!o.tokenizer.empty()) tokenizer = data::Tokenizer::from_file(o.tokenizer);
  std::vector<int64_t> prompt;
  if (!o.prompt.empty()) {
    for (uint32_t id : tokenizer->encode(o.prompt)) prompt.push_back(id);
  } else {
    prompt = parse_ids(o.prompt_ids, m->config().vocab_size);
  }

  eval::GenerationOptions g;
  g.max_new_tokens = o.max_new_tokens;
  g.mode = attention::parse_mode(attention.inference);
  g.sparse = attention::sparse_spec(attention);
  g.backend = attention::parse_backend(attention.backend);
  g.query_chunk = attention.query_chunk;
  g.sampling = {o.greedy, o.temperature, o.top_p, o.seed};
  if (!o.ignore_eos) g.stop_token = m->config().eos_token_id;
  g.use_cache = !o.no_cache;
  const auto generated = eval::generate(m, prompt, g);
  if (tokenizer) {
    std::vector<uint32_t> ids(generated.begin(), generated.end());
    fmt::print("{}{}\n", o.prompt, tokenizer->decode(ids));
  }
  if (!tokenizer || o.print_ids) fmt::print("{}\n", fmt::join(generated, " "));
}

const Registration kRegistration("generate", [](CLI::App& app) {
  auto o = std::make_shared<GenerateOptions>();
  auto* cmd = app.add_subcommand("generate", "Continue a prompt with the model (KV cache; full or sparse attention)");
  cmd->add_option("--model,-m", o->model, "Model folder (config.json + model.safetensors)")->required();
  cmd->add_option("--tokenizer", o->tokenizer, "tokenizer.json (needed for --prompt; decodes the output)");
  cmd->add_option("--prompt", o->prompt, "Prompt text");
  cmd->add_option("--prompt-ids", o->prompt_ids, "Prompt token ids, separated by spaces or commas");
  cmd->add_option("--max-new-tokens", o->max_new_tokens, "Tokens to generate")->check(CLI::NonNegativeNumber);
  cmd->add_option("--attention", o->attention, "full | sparse (default: the folder's inference mode)")
      ->check(CLI::IsMember({"full", "sparse"}));
  cmd->add_option("--block-size", o->block_size, "Sparse block size (default: the folder's)")->check(CLI::PositiveNumber);
  cmd->add_option("--topk", o->topk, "Blocks per query, current included (default: the folder's)")->check(CLI::PositiveNumber);
  cmd->add_option("--selection", o->selection, "group | head (default: the folder's)")->check(CLI::IsMember({"group", "head"}));
  auto* greedy = cmd->add_flag("--greedy", o->greedy, "Always take the most likely token");
  cmd->add_option("--temperature", o->temperature, "Sampling temperature")->excludes(greedy)->check(CLI::PositiveNumber);
  cmd->add_option("--top-p", o->top_p, "Nucleus sampling mass in (0, 1]")->excludes(greedy)->check(CLI::Range(1e-9, 1.0));
  cmd->add_option("--seed", o->seed, "Sampling seed");
  cmd->add_flag("--no-cache", o->no_cache, "Recompute the whole sequence every step (slow; for checking)");
  cmd->add_flag("--ignore-eos", o->ignore_eos, "Do not stop at the model's EOS token");
  cmd->add_flag("--print-ids", o->print_ids, "Also print the generated token ids");
  cmd->add_option("--device", o->device, "cpu | cuda | cuda:N");
  cmd->add_option("--dtype", o->dtype, "Compute dtype")->check(CLI::IsMember({"float32", "bfloat16", "float64"}));
  cmd->callback([o] { run_generate(*o); });
});

}  // namespace
}  // namespace ssa::cli
