// `ssa data tokenize` (text -> datatrove token shards) and `ssa data inspect` (what a shard folder
// holds). The work is in ssa_core (tokenize_corpus, ShardSet); this file is the command line.
#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <optional>
#include <thread>

#include "ssa/cli/data_commands.h"
#include "ssa/data/shard_metadata.h"
#include "ssa/data/shard_set.h"
#include "ssa/data/tokenize_corpus.h"
#include "ssa/data/tokenizer.h"
#include "ssa/util/error.h"

namespace ssa::cli {
namespace {

namespace fs = std::filesystem;

struct TokenizeArguments {
  std::string tokenizer;
  std::vector<std::string> inputs;
  std::string out;
  std::string text_field = "text";
  bool bos = false;
  uint64_t shard_tokens = 100'000'000;
  std::optional<uint64_t> shuffle_seed;
  bool skip_bad = false;
  unsigned threads = std::max(1u, std::thread::hardware_concurrency());
  std::string name = "shard";
};

// A progress line rewritten in place on a terminal, at most every half second.
class ProgressLine {
 public:
  ProgressLine() : enabled_(::isatty(::fileno(stderr)) != 0) {}
  void update(const data::TokenizeProgress& progress) {
    if (!enabled_) return;
    const auto now = std::chrono::steady_clock::now();
    const bool last = progress.phase == "done";
    if (!last && now - last_print_ < std::chrono::milliseconds(500)) return;
    last_print_ = now;
    const double seconds = std::max(progress.seconds, 1e-9);
    if (progress.phase == "shuffling") {
      std::fprintf(stderr, "\r\033[Kshuffling: %llu documents written", static_cast<unsigned long long>(progress.documents));
    } else {
      std::fprintf(stderr, "\r\033[K%s: %.1f MB read (%.1f MB/s), %llu documents, %.2fM tokens (%.2fM tokens/s)",
                   last ? "tokenized" : "tokenizing", progress.input_bytes / 1e6, progress.input_bytes / 1e6 / seconds,
                   static_cast<unsigned long long>(progress.documents), progress.tokens / 1e6,
                   progress.tokens / 1e6 / seconds);
    }
    if (last) std::fputc('\n', stderr);
    std::fflush(stderr);
  }

 private:
  bool enabled_;
  std::chrono::steady_clock::time_point last_print_{};
};

void run_tokenize(const TokenizeArguments& arguments) {
  const auto tokenizer = data::Tokenizer::from_file(arguments.tokenizer);
  data::TokenizeOptions options;
  for (const auto& input : arguments.inputs) options.inputs.emplace_back(input);
  options.output_folder = arguments.out;
  options.name = arguments.name;
  options.text_field = arguments.text_field;
  options.eos_id = tokenizer.eos_id();
  if (arguments.bos) {
    options.bos_id = tokenizer.bos_id();
    if (!options.bos_id) throw UsageError(fmt::format("--bos: tokenizer '{}' has no BOS token", tokenizer.name()));
  }
  options.token_width = data::token_width_for_vocab(tokenizer.vocab_size());
  options.tokenizer_name = tokenizer.name();
  options.shard_tokens = arguments.shard_tokens;
  options.shuffle_seed = arguments.shuffle_seed;
  options.skip_bad = arguments.skip_bad;
  options.threads = arguments.threads;

  ProgressLine progress;
  const auto summary = data::tokenize_corpus(
      options, [&tokenizer](std::string_view text) { return tokenizer.encode(text); },
      [&progress](const data::TokenizeProgress& p) { progress.update(p); });
  std::printf("wrote %zu shards to %s: %llu documents, %llu tokens (%s, %u-byte tokens, tokenizer %s) from %llu files "
              "(%.1f MB) in %.1f s\n",
              summary.shards.size(), arguments.out.c_str(), static_cast<unsigned long long>(summary.documents),
              static_cast<unsigned long long>(summary.tokens), data::humanize_token_count(summary.tokens).c_str(),
              options.token_width, tokenizer.name().c_str(), static_cast<unsigned long long>(summary.input_files),
              summary.input_bytes / 1e6, summary.seconds);
  if (arguments.skip_bad) {
    std::printf("skipped %llu malformed lines\n", static_cast<unsigned long long>(summary.skipped));
  }
}

struct InspectArguments {
  std::string folder;
  std::string tokenizer;
  std::string format = "datatrove";
  std::optional<uint32_t> separator;
  uint64_t document = 0;
  uint64_t sample_tokens = 200;
};

void run_inspect(const InspectArguments& arguments) {
  std::optional<data::Tokenizer> tokenizer;
  if (!arguments.tokenizer.empty()) tokenizer = data::Tokenizer::from_file(arguments.tokenizer);
  const data::ShardFormat format = data::parse_shard_format(arguments.format);
  data::ShardSetOptions options{format, 0, {}};
  if (format != data::ShardFormat::datatrove) {
    if (!arguments.separator && !tokenizer) {
      throw UsageError("--separator or --tokenizer is needed to cut llm.c and raw streams into documents");
    }
    const uint32_t separator = arguments.separator ? *arguments.separator : tokenizer->eos_id();
    options.separator = data::DocumentSeparator{separator, !tokenizer || separator == tokenizer->eos_id()};
  }
  const data::ShardSet set = data::ShardSet::open(arguments.folder, options);

  uint64_t longest = 0;
  for (uint64_t d = 0; d < set.document_count(); ++d) longest = std::max(longest, set.document_length(d));
  std::printf("%s\n", arguments.folder.c_str());
  std::printf("format %s, %u-byte tokens%s%s, fingerprint %s\n", std::string(data::to_string(set.format())).c_str(),
              set.token_width(), set.shards().front().tokenizer().empty() ? "" : ", tokenizer ",
              set.shards().front().tokenizer().c_str(), set.fingerprint().c_str());
  std::printf("%zu shards, %llu documents, %llu tokens (%s); document length mean %.1f, max %llu\n", set.shards().size(),
              static_cast<unsigned long long>(set.document_count()), static_cast<unsigned long long>(set.token_count()),
              data::humanize_token_count(set.token_count()).c_str(),
              set.document_count() ? static_cast<double>(set.token_count()) / set.document_count() : 0.0,
              static_cast<unsigned long long>(longest));
  std::size_t name_width = 5;
  for (const auto& shard : set.shards()) name_width = std::max(name_width, shard.path().filename().string().size());
  std::printf("%-*s %15s %12s %15s\n", static_cast<int>(name_width), "shard", "tokens", "documents", "bytes");
  for (const auto& shard : set.shards()) {
    std::printf("%-*s %15llu %12llu %15llu\n", static_cast<int>(name_width), shard.path().filename().string().c_str(),
                static_cast<unsigned long long>(shard.token_count()),
                static_cast<unsigned long long>(shard.document_count()),
                static_cast<unsigned long long>(shard.file_bytes()));
  }
  if (!tokenizer || set.document_count() == 0) return;
  if (arguments.document >= set.document_count()) {
    throw UsageError(fmt::format("--document {}: the folder has {} documents", arguments.document, set.document_count()));
  }
  const auto document = set.document(arguments.document);
  const uint64_t count = std::min(document.length, arguments.sample_tokens);
  std::vector<uint32_t> ids(count);
  document.shard->copy_tokens(document.begin, count, ids.data());
  std::printf("\ndocument %llu (first %llu of %llu tokens):\n%s\n", static_cast<unsigned long long>(arguments.document),
              static_cast<unsigned long long>(count), static_cast<unsigned long long>(document.length),
              tokenizer->decode(ids).c_str());
}

}  // namespace

void add_data_shard_commands(CLI::App& data) {
  auto tokenize_arguments = std::make_shared<TokenizeArguments>();
  auto* tokenize = data.add_subcommand("tokenize", "Tokenize text (.jsonl, .jsonl.gz, .jsonl.zst, .txt) into datatrove shards");
  tokenize->add_option("--tokenizer", tokenize_arguments->tokenizer, "tokenizer.json (e.g. scripts/fetch-tokenizer.sh)")
      ->required();
  tokenize->add_option("--input", tokenize_arguments->inputs, "Input files or folders (folders are walked recursively)")
      ->required();
  tokenize->add_option("--out", tokenize_arguments->out, "Output folder for NAME_#####.ds(.index, .metadata)")->required();
  tokenize->add_option("--text-field", tokenize_arguments->text_field, "JSON field holding the text")
      ->capture_default_str();
  tokenize->add_flag("--bos", tokenize_arguments->bos, "Start every document with BOS (EOS always ends it)");
  tokenize->add_option("--shard-tokens", tokenize_arguments->shard_tokens, "Start a new shard after this many tokens")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  tokenize->add_option("--shuffle-seed", tokenize_arguments->shuffle_seed, "Shuffle the documents (deterministically)");
  tokenize->add_flag("--skip-bad", tokenize_arguments->skip_bad, "Skip and count malformed lines instead of failing");
  tokenize->add_option("--threads", tokenize_arguments->threads, "Encoding threads (default: all cores)")
      ->check(CLI::PositiveNumber);
  tokenize->add_option("--name", tokenize_arguments->name, "Shard file name prefix")->capture_default_str();
  tokenize->callback([tokenize_arguments] { run_tokenize(*tokenize_arguments); });

  auto inspect_arguments = std::make_shared<InspectArguments>();
  auto* inspect = data.add_subcommand("inspect", "Summarise a folder of token shards; decode a sample document");
  inspect->add_option("folder", inspect_arguments->folder, "Shard folder (or one token file)")->required();
  inspect->add_option("--tokenizer", inspect_arguments->tokenizer, "tokenizer.json to decode a sample document");
  inspect->add_option("--format", inspect_arguments->format, "datatrove | llmc | raw_u16 | raw_u32")->capture_default_str();
  inspect->add_option("--separator", inspect_arguments->separator,
                      "Token that cuts llm.c and raw streams into documents (default: the tokenizer's EOS)");
  inspect->add_option("--document", inspect_arguments->document, "Which document to decode")->capture_default_str();
  inspect->add_option("--sample-tokens", inspect_arguments->sample_tokens, "How many of its tokens")->capture_default_str();
  inspect->callback([inspect_arguments] { run_inspect(*inspect_arguments); });
}

}  // namespace ssa::cli
