// `ssa eval`: every task under every attention setting (full, and sparse at each receptive
// field), as a Markdown table on stdout and a JSON file (docs/evaluation.md).
#include <CLI/CLI.hpp>
#include <filesystem>
#include <fmt/format.h>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "ssa/attention/attention_statistics.h"
#include "ssa/cli/command.h"
#include "ssa/data/shard_set.h"
#include "ssa/data/tokenizer.h"
#include "ssa/data/validation_split.h"
#include "ssa/eval/eval_settings.h"
#include "ssa/eval/generation.h"
#include "ssa/eval/model_loglikelihood.h"
#include "ssa/eval/multiple_choice.h"
#include "ssa/eval/needle_haystack.h"
#include "ssa/eval/perplexity.h"
#include "ssa/eval/results_table.h"
#include "ssa/io/atomic_file.h"
#include "ssa/model/model_folder.h"
#include "ssa/util/error.h"

namespace ssa::cli {
namespace {

using Json = nlohmann::ordered_json;

struct EvalOptions {
  std::string model, tokenizer, out;
  std::vector<std::string> modes{"full", "sparse"};
  std::vector<int64_t> receptive_fields{256, 512, 1024, 2048, 4096};
  int64_t block_size = 0;
  std::string selection;
  std::vector<std::string> tasks;
  // perplexity
  int64_t max_length = 8192, stride = 0;
  std::string shard_format = "datatrove";
  double shard_fraction = 0.001;  // the trainer's default data.validation_fraction
  int64_t shard_documents = 0;    // > 0 replaces shard_fraction, as data.validation_documents
  std::vector<int64_t> pg19_contexts{4096, 8192, 16384, 32768};
  int64_t pg19_stride = 256;
  // statistics
  int64_t stats_tokens = 4096;
  // multiple choice
  int64_t shots = 0;
  std::vector<uint64_t> seeds{1, 12, 123, 1234, 12345};
  std::string fewshot_file;
  int64_t mc_limit = 0;
  // needle in a haystack
  std::string haystack;
  std::vector<int64_t> niah_lengths{4096, 8192, 16384, 32768};
  std::vector<double> niah_depths{0.0, 0.25, 0.5, 0.75, 1.0};
  int64_t niah_cases = 10;
  int64_t niah_answer_tokens = 12;
  std::string device = "cpu", dtype = "float32";
};

struct Task {
  std::string kind, argument;
};

std::vector<Task> parse_tasks(const std::vector<std::string>& specs) {
  static const std::set<std::string> kinds{"ppl-text", "ppl-tokens", "ppl-shards", "pg19", "stats", "mc", "niah"};
  std::vector<Task> tasks;
  for (const auto& spec : specs) {
    const auto colon = spec.find(':');
    Task t{spec.substr(0, colon), colon == std::string::npos ? "" : spec.substr(colon + 1)};
    if (!kinds.count(t.kind)) {
      throw UsageError("--tasks: unknown task '" + t.kind + "' (ppl-text:FILE, ppl-tokens:FILE, ppl-shards:DIR, pg19:FILE, stats[:FILE], mc:FILE, niah)");
    }
    if (t.argument.empty() && t.kind != "stats" && t.kind != "niah") throw UsageError("--tasks: " + t.kind + " needs :FILE");
    tasks.push_back(t);
  }
  if (tasks.empty()) throw UsageError("--tasks: name at least one task");
  return tasks;
}

// Text documents of a file: a .jsonl file holds one {"text": ...} per line, any other file is one document.
std::vector<std::string> read_documents(const std::string& path) {
  const std::string content = io::read_file(path);
  if (std::filesystem::path(path).extension() != ".jsonl") return {content};
  std::vector<std::string> docs;
  std::istringstream in(content);
  std::string line;
  for (int64_t number = 1; std::getline(in, line); ++number) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    try {
      docs.push_back(nlohmann::json::parse(line).at("text").get<std::string>());
    } catch (const nlohmann::json::exception&) {
      throw UsageError(fmt::format("{}:{}: expected a JSON object with a string field \"text\"", path, number));
    }
  }
  if (docs.empty()) throw UsageError(path + " holds no documents");
  return docs;
}

// One document of token ids per line, as `ssa score --tokens` reads them.
std::vector<std::vector<int64_t>> read_token_documents(const std::string& path, int64_t vocab) {
  std::ifstream in(path);
  if (!in) throw UsageError("cannot open token file " + path);
  std::vector<std::vector<int64_t>> docs;
  std::string line;
  for (int64_t number = 1; std::getline(in, line); ++number) {
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
      if (used != word.size() || id < 0 || id >= vocab) {
        throw UsageError(fmt::format("{}:{}: '{}' is not a token id in [0, {})", path, number, word, vocab));
      }
      ids.push_back(id);
    }
    if (!ids.empty()) docs.push_back(std::move(ids));
  }
  if (docs.empty()) throw UsageError(path + " holds no token sequences");
  return docs;
}

std::string stem(const std::string& path) { return std::filesystem::path(path).stem().string(); }

class Evaluator {
 public:
  Evaluator(const EvalOptions& o, model::LlamaForCausalLM model, std::optional<data::Tokenizer> tokenizer)
      : o_(o), model_(std::move(model)), tokenizer_(std::move(tokenizer)) {}

  Json run(const eval::EvalSetting& setting, const std::vector<Task>& tasks) {
    model::ForwardOptions forward;
    forward.mode = setting.mode;
    forward.sparse = setting.sparse;
    Json run;
    run["label"] = setting.label();
    run["attention"] = attention::mode_name(setting.mode);
    run["receptive_field"] = setting.receptive_field ? Json(*setting.receptive_field) : Json();
    run["topk"] = setting.receptive_field ? Json(setting.sparse.topk) : Json();
    Json summary = Json::object();
    for (const auto& task : tasks) {
      fmt::print(stderr, "[{}] {}{}{}\n", setting.label(), task.kind, task.argument.empty() ? "" : ":", task.argument);
      if (task.kind == "ppl-text") text_perplexity(task, forward, run, summary);
      if (task.kind == "ppl-tokens") token_perplexity(task, forward, run, summary);
      if (task.kind == "ppl-shards") shard_perplexity(task, forward, run, summary);
      if (task.kind == "pg19") pg19(task, forward, run, summary);
      if (task.kind == "stats") statistics(task, tasks, setting, forward, run, summary);
      if (task.kind == "mc") multiple_choice(task, forward, run, summary);
      if (task.kind == "niah") needle(forward, run, summary);
    }
    run["summary"] = summary;
    return run;
  }

 private:
  const data::Tokenizer& tokenizer(const std::string& task) const {
    if (!tokenizer_) throw UsageError("task " + task + " needs --tokenizer FILE");
    return *tokenizer_;
  }
  std::vector<int64_t> encode(const std::string& text, const std::string& task) const {
    std::vector<int64_t> ids;
    for (uint32_t id : tokenizer(task).encode(text)) ids.push_back(id);
    return ids;
  }
  int64_t prefix() const { return model_->config().eos_token_id; }
  int64_t stride() const { return o_.stride > 0 ? o_.stride : o_.max_length; }

  static Json totals_json(const eval::PerplexityTotals& t) {
    return Json{{"token_perplexity", t.token_perplexity()}, {"word_perplexity", t.word_perplexity()},
                {"byte_perplexity", t.byte_perplexity()},   {"bits_per_byte", t.bits_per_byte()},
                {"nll", t.nll},                             {"tokens", t.tokens},
                {"words", t.words},                         {"bytes", t.bytes}};
  }

  void text_perplexity(const Task& task, const model::ForwardOptions& forward, Json& run, Json& summary) {
    eval::PerplexityTotals totals;
    for (const auto& doc : read_documents(task.argument)) {
      totals.add(eval::text_perplexity(model_, doc, encode(doc, "ppl-text"), prefix(), o_.max_length, stride(), forward));
    }
    run["ppl_text"][stem(task.argument)] = totals_json(totals);
    summary[stem(task.argument) + " word_ppl"] = totals.word_perplexity();
    summary[stem(task.argument) + " bits/byte"] = totals.bits_per_byte();
  }

  void token_perplexity(const Task& task, const model::ForwardOptions& forward, Json& run, Json& summary) {
    eval::PerplexityTotals totals;
    for (const auto& doc : read_token_documents(task.argument, model_->config().vocab_size)) {
      totals.nll += eval::rolling_nll(model_, doc, prefix(), o_.max_length, stride(), forward);
      totals.tokens += static_cast<int64_t>(doc.size());
    }
    run["ppl_tokens"][stem(task.argument)] = Json{{"token_perplexity", totals.token_perplexity()},
                                                  {"nll", totals.nll}, {"tokens", totals.tokens}};
    summary[stem(task.argument) + " token_ppl"] = totals.token_perplexity();
  }

  // Index-less formats split documents at the model's end-of-text token, as the trainer's default.
  data::ShardSetOptions shard_options() const {
    data::ShardSetOptions options;
    options.format = data::parse_shard_format(o_.shard_format);
    options.separator = data::DocumentSeparator{static_cast<uint32_t>(model_->config().eos_token_id), true};
    return options;
  }

  // The documents a training run on this folder holds out (data/validation_split.h), with the
  // same held-out count rule, so that the figure compares with the trainer's validation loss.
  void shard_perplexity(const Task& task, const model::ForwardOptions& forward, Json& run, Json& summary) {
    const auto set = data::ShardSet::open(task.argument, shard_options());
    const uint64_t documents = set.document_count();
    uint64_t held_out = static_cast<uint64_t>(o_.shard_documents);
    if (held_out == 0) held_out = std::max<uint64_t>(1, std::llround(o_.shard_fraction * static_cast<double>(documents)));
    if (held_out >= documents) {
      throw UsageError(fmt::format("ppl-shards:{}: {} held-out documents asked of a folder of {}", task.argument,
                                   held_out, documents));
    }
    const data::ValidationSplit split(documents, held_out);
    const auto vocab = static_cast<uint32_t>(model_->config().vocab_size);
    eval::PerplexityTotals totals;
    for (uint64_t i = 0; i < split.validation_documents(); ++i) {
      const auto doc = set.document(split.validation_document(i));
      std::vector<uint32_t> ids(doc.length);
      doc.shard->copy_tokens(doc.begin, doc.length, ids.data());
      if (ids.size() < 2) continue;
      for (uint32_t id : ids) {
        if (id >= vocab) throw FormatError(fmt::format("ppl-shards:{}: token {} is outside the model's vocabulary of {}", task.argument, id, vocab));
      }
      totals.nll += eval::rolling_nll(model_, std::vector<int64_t>(ids.begin(), ids.end()), prefix(), o_.max_length, stride(), forward);
      totals.tokens += static_cast<int64_t>(ids.size());
    }
    const std::string name = std::filesystem::path(task.argument).filename().string();
    run["ppl_shards"][name] = Json{{"token_perplexity", totals.token_perplexity()}, {"nll", totals.nll},
                                   {"tokens", totals.tokens}, {"documents", held_out}};
    summary[name + " token_ppl"] = totals.token_perplexity();
  }

  void pg19(const Task& task, const model::ForwardOptions& forward, Json& run, Json& summary) {
    std::vector<std::vector<int64_t>> docs;
    for (const auto& doc : read_documents(task.argument)) docs.push_back(encode(doc, "pg19"));
    Json by_context = Json::object();
    for (int64_t context : o_.pg19_contexts) {
      eval::PerplexityTotals totals;
      for (const auto& doc : docs) {
        totals.nll += eval::rolling_nll(model_, doc, prefix(), context, std::min(o_.pg19_stride, context), forward);
        totals.tokens += static_cast<int64_t>(doc.size());
      }
      by_context[std::to_string(context)] = totals.token_perplexity();
      summary[fmt::format("{} ppl@{}", stem(task.argument), context)] = totals.token_perplexity();
    }
    run["pg19"][stem(task.argument)] = Json{{"stride", o_.pg19_stride}, {"perplexity", by_context}};
  }

  void statistics(const Task& task, const std::vector<Task>& tasks, const eval::EvalSetting& setting,
                  model::ForwardOptions forward, Json& run, Json& summary) {
    std::string file = task.argument;
    for (const auto& t : tasks) {
      if (file.empty() && (t.kind == "ppl-text" || t.kind == "pg19")) file = t.argument;
    }
    if (file.empty()) throw UsageError("task stats needs a text: stats:FILE (or a ppl-text:FILE task)");
    auto ids = encode(read_documents(file).front(), "stats");
    if (static_cast<int64_t>(ids.size()) > o_.stats_tokens) ids.resize(static_cast<size_t>(o_.stats_tokens));
    const auto tokens = torch::tensor(ids, torch::kInt64).unsqueeze(0).to(model_->output_weight().device());
    // A full-attention run is measured against the selection of every receptive field; a sparse
    // run against its own.
    std::vector<int64_t> fields = setting.receptive_field ? std::vector<int64_t>{*setting.receptive_field} : o_.receptive_fields;
    Json by_field = Json::object();
    for (int64_t field : fields) {
      forward.sparse.topk = field / forward.sparse.block_size;
      const auto layers = attention::model_attention_statistics(model_, tokens, forward);
      Json per_layer = Json::array();
      double sparsity = 0, dropped = 0, entropy = 0, kl = 0;
      for (const auto& s : layers) {
        per_layer.push_back(Json{{"sparsity", s.mean_sparsity}, {"dropped", s.mean_dropped},
                                 {"entropy", s.mean_entropy}, {"kl", s.mean_kl}, {"output_error", s.mean_output_error}});
        sparsity += s.mean_sparsity / static_cast<double>(layers.size());
        dropped += s.mean_dropped / static_cast<double>(layers.size());
        entropy += s.mean_entropy / static_cast<double>(layers.size());
        kl += s.mean_kl / static_cast<double>(layers.size());
      }
      by_field[std::to_string(field)] = Json{{"tokens", ids.size()},
                                             {"mean", {{"sparsity", sparsity}, {"dropped", dropped}, {"entropy", entropy}, {"kl", kl}}},
                                             {"layers", per_layer}};
      // The table shows a full run against the first receptive field's selection (the JSON has all).
      if (field == fields.front()) {
        summary["sparsity"] = sparsity;
        summary["kl"] = kl;
        summary["entropy"] = entropy;
      }
    }
    run["stats"] = Json{{"text", file}, {"receptive_fields", by_field}};
  }

  void multiple_choice(const Task& task, const model::ForwardOptions& forward, Json& run, Json& summary) {
    auto items = eval::read_choice_items(task.argument);
    if (o_.mc_limit > 0 && static_cast<int64_t>(items.size()) > o_.mc_limit) items.resize(static_cast<size_t>(o_.mc_limit));
    const bool separate_pool = !o_.fewshot_file.empty();
    const auto pool = separate_pool ? eval::read_choice_items(o_.fewshot_file) : items;
    eval::EncodeFn encoder = [this](const std::string& text) { return encode(text, "mc"); };
    auto loglikelihood = eval::model_loglikelihood(model_, encoder, prefix(), o_.max_length, forward);
    const auto s = eval::score_choices_over_seeds(items, pool, !separate_pool, o_.shots, o_.shots > 0 ? o_.seeds : std::vector<uint64_t>{0},
                                                  loglikelihood);
    Json per_seed = Json::array();
    for (const auto& p : s.per_seed) per_seed.push_back(Json{{"acc", p.acc}, {"acc_norm", p.acc_norm}});
    run["mc"][stem(task.argument)] = Json{{"items", items.size()},    {"shots", o_.shots},
                                          {"acc", s.acc_mean},        {"acc_std", s.acc_std},
                                          {"acc_norm", s.acc_norm_mean}, {"acc_norm_std", s.acc_norm_std},
                                          {"per_seed", per_seed}};
    summary[stem(task.argument) + " acc_norm"] = s.acc_norm_mean;
  }

  void needle(const model::ForwardOptions& forward, Json& run, Json& summary) {
    if (o_.haystack.empty()) throw UsageError("task niah needs --haystack FILE (plain text)");
    const auto& tok = tokenizer("niah");
    if (!haystack_) {
      haystack_ = std::make_unique<eval::NeedleHaystack>(io::read_file(o_.haystack),
                                                         [this](const std::string& t) { return encode(t, "niah"); });
    }
    eval::GenerationOptions g;
    g.max_new_tokens = o_.niah_answer_tokens;
    g.mode = forward.mode;
    g.sparse = forward.sparse;
    Json cells = Json::array();
    double total = 0;
    for (int64_t length : o_.niah_lengths) {
      for (double depth : o_.niah_depths) {
        int64_t correct = 0;
        for (int64_t i = 0; i < o_.niah_cases; ++i) {
          const auto c = haystack_->make_case(length, depth, static_cast<uint64_t>(i));
          const auto answer = eval::generate(model_, c.prompt, g);
          correct += eval::needle_answer_correct(tok.decode(std::vector<uint32_t>(answer.begin(), answer.end())), c.answer);
        }
        const double accuracy = static_cast<double>(correct) / static_cast<double>(o_.niah_cases);
        cells.push_back(Json{{"length", length}, {"depth", depth}, {"accuracy", accuracy}, {"cases", o_.niah_cases}});
        total += accuracy;
      }
    }
    const double mean = total / static_cast<double>(o_.niah_lengths.size() * o_.niah_depths.size());
    run["niah"] = Json{{"cells", cells}, {"mean", mean}};
    summary["niah"] = mean;
  }

  const EvalOptions& o_;
  model::LlamaForCausalLM model_;
  std::optional<data::Tokenizer> tokenizer_;
  std::unique_ptr<eval::NeedleHaystack> haystack_;
};

void run_eval(const EvalOptions& o) {
  torch::NoGradGuard no_grad;
  const auto tasks = parse_tasks(o.tasks);
  auto loaded = model::load_model_folder(o.model, torch::Device(o.device), model::parse_dtype(o.dtype));
  loaded.model->eval();
  const int64_t block_size = o.block_size > 0 ? o.block_size : loaded.attention.block_size;
  const std::string selection = o.selection.empty() ? loaded.attention.selection : o.selection;
  std::vector<attention::Mode> modes;
  for (const auto& m : o.modes) modes.push_back(attention::parse_mode(m));
  const auto settings = eval::eval_settings(modes, o.receptive_fields, block_size, attention::parse_selection(selection));

  std::optional<data::Tokenizer> tokenizer;
  if (!o.tokenizer.empty()) tokenizer = data::Tokenizer::from_file(o.tokenizer);
  Evaluator evaluator(o, loaded.model, std::move(tokenizer));
  Json results;
  results["model"] = o.model;
  results["block_size"] = block_size;
  results["selection"] = selection;
  results["tasks"] = o.tasks;
  results["runs"] = Json::array();
  for (const auto& setting : settings) results["runs"].push_back(evaluator.run(setting, tasks));

  fmt::print("{}", eval::summary_markdown(results));
  for (const auto& run : results["runs"]) {
    const auto niah = eval::niah_markdown(run);
    if (!niah.empty()) fmt::print("\nNeedle in a haystack, {} (accuracy):\n\n{}", run["label"].get<std::string>(), niah);
  }
  if (!o.out.empty()) io::write_file_atomic(o.out, results.dump(2) + "\n");
}

const Registration kRegistration("eval", [](CLI::App& app) {
  auto o = std::make_shared<EvalOptions>();
  auto* cmd = app.add_subcommand("eval", "Perplexity, attention statistics, multiple choice and needle in a haystack "
                                         "under full and sparse attention at several receptive fields");
  cmd->add_option("--model,-m", o->model, "Model folder (config.json + model.safetensors)")->required();
  cmd->add_option("--tasks", o->tasks,
                  "Comma-separated: ppl-text:FILE (text or .jsonl of {\"text\"}), ppl-tokens:FILE (token ids per line), "
                  "ppl-shards:DIR (held-out documents of a token-shard folder), "
                  "pg19:FILE, stats[:FILE], mc:FILE (items JSONL), niah")
      ->required()->delimiter(',');
  cmd->add_option("--tokenizer", o->tokenizer, "tokenizer.json (needed by every task on text)");
  cmd->add_option("--out", o->out, "Write the results as JSON to this file");
  cmd->add_option("--attention", o->modes, "Attention modes, comma-separated")->delimiter(',')
      ->check(CLI::IsMember({"full", "sparse"}));
  cmd->add_option("--receptive-fields", o->receptive_fields, "Sparse receptive fields in tokens (topk = r / block size)")
      ->delimiter(',');
  cmd->add_option("--block-size", o->block_size, "Sparse block size (default: the folder's)")->check(CLI::PositiveNumber);
  cmd->add_option("--selection", o->selection, "group | head (default: the folder's)")->check(CLI::IsMember({"group", "head"}));
  cmd->add_option("--max-length", o->max_length, "Context of perplexity windows and multiple choice")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--stride", o->stride, "Tokens scored per perplexity window after the first (default: max length, as lm-eval)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--shard-format", o->shard_format, "Token file layout of ppl-shards folders")->capture_default_str()
      ->check(CLI::IsMember({"datatrove", "llmc", "raw_u16", "raw_u32"}));
  cmd->add_option("--shard-fraction", o->shard_fraction, "Held-out fraction of the documents of ppl-shards folders")
      ->capture_default_str()->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--shard-documents", o->shard_documents, "Held-out documents of ppl-shards folders (replaces --shard-fraction)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--pg19-contexts", o->pg19_contexts, "Context lengths of the pg19 task")->capture_default_str()->delimiter(',');
  cmd->add_option("--pg19-stride", o->pg19_stride, "Tokens scored per sliding window of the pg19 task")->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_option("--stats-tokens", o->stats_tokens, "Tokens of text for the attention statistics")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--shots", o->shots, "Few-shot examples per multiple-choice item")->capture_default_str()->check(CLI::NonNegativeNumber);
  cmd->add_option("--seeds", o->seeds, "Few-shot seeds, averaged")->capture_default_str()->delimiter(',');
  cmd->add_option("--fewshot-file", o->fewshot_file, "Draw few-shot examples from this items file instead");
  cmd->add_option("--mc-limit", o->mc_limit, "Score only the first N items of each mc file")->check(CLI::PositiveNumber);
  cmd->add_option("--haystack", o->haystack, "Plain-text haystack of the niah task");
  cmd->add_option("--niah-lengths", o->niah_lengths, "Prompt lengths in tokens")->capture_default_str()->delimiter(',');
  cmd->add_option("--niah-depths", o->niah_depths, "Needle depths in [0, 1]")->capture_default_str()->delimiter(',');
  cmd->add_option("--niah-cases", o->niah_cases, "Cases per depth and length")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--device", o->device, "cpu | cuda | cuda:N");
  cmd->add_option("--dtype", o->dtype, "Compute dtype")->check(CLI::IsMember({"float32", "bfloat16", "float64"}));
  cmd->callback([o] { run_eval(*o); });
});

}  // namespace
}  // namespace ssa::cli
