// `ssa data encode|decode`: text to token ids and back with a tokenizer.json; the hidden
// `ssa data bench-tokenizer` measures the tokenizer's throughput (scripts/bench-tokenizer.sh).
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>
#include <thread>

#include "ssa/cli/data_commands.h"
#include "ssa/data/tokenizer.h"
#include "ssa/util/error.h"

namespace ssa::cli {
namespace {

std::string read_stdin() {
  std::ostringstream content;
  content << std::cin.rdbuf();
  return content.str();
}

void write_stdout(std::string_view bytes) {
  if (std::fwrite(bytes.data(), 1, bytes.size(), stdout) != bytes.size() || std::fflush(stdout) != 0) {
    throw std::runtime_error("cannot write to standard output");
  }
}

void run_encode(const std::string& tokenizer_path) {
  const auto tokenizer = data::Tokenizer::from_file(tokenizer_path);
  const auto ids = tokenizer.encode(read_stdin());
  fmt::memory_buffer out;
  for (size_t k = 0; k < ids.size(); ++k) fmt::format_to(std::back_inserter(out), k ? " {}" : "{}", ids[k]);
  out.push_back('\n');
  write_stdout(std::string_view(out.data(), out.size()));
}

void run_decode(const std::string& tokenizer_path) {
  const auto tokenizer = data::Tokenizer::from_file(tokenizer_path);
  std::istringstream words(read_stdin());
  std::vector<uint32_t> ids;
  for (std::string word; words >> word;) {
    const bool digits = word.size() <= 10 && std::all_of(word.begin(), word.end(), [](char c) { return c >= '0' && c <= '9'; });
    const uint64_t id = digits ? std::stoull(word) : 0;
    if (!digits || id >= tokenizer.vocab_size()) {
      throw UsageError(fmt::format("'{}' is not a token id of tokenizer '{}' (0 to {})", word, tokenizer.name(),
                                   tokenizer.vocab_size() - 1));
    }
    ids.push_back(static_cast<uint32_t>(id));
  }
  write_stdout(tokenizer.decode(ids));  // names any id the vocabulary lacks
}

struct BenchOptions {
  std::string tokenizer;
  std::string input;
  unsigned threads = std::max(1u, std::thread::hardware_concurrency());
};

// Pieces of about `target` bytes, each ending with a newline (as documents would).
std::vector<std::string_view> split_at_lines(std::string_view text, size_t target) {
  std::vector<std::string_view> pieces;
  while (!text.empty()) {
    size_t end = std::min(text.size(), target);
    if (end < text.size()) {
      const size_t newline = text.find('\n', end);
      end = newline == std::string_view::npos ? text.size() : newline + 1;
    }
    pieces.push_back(text.substr(0, end));
    text.remove_prefix(end);
  }
  return pieces;
}

// Encodes every piece with `threads` new threads (so every run starts with cold per-thread word
// caches, as the shard writer's threads do); prints one JSON line with the throughput.
void bench_tokenizer(const data::Tokenizer& tokenizer, const std::vector<std::string_view>& pieces, size_t bytes,
                     unsigned threads) {
  std::atomic<size_t> next{0}, tokens{0};
  const auto work = [&] {
    std::vector<uint32_t> ids;
    size_t count = 0;
    for (size_t k; (k = next++) < pieces.size();) {
      ids.clear();
      tokenizer.encode(pieces[k], ids);
      count += ids.size();
    }
    tokens += count;
  };
  const auto wall_start = std::chrono::steady_clock::now();
  const std::clock_t cpu_start = std::clock();
  std::vector<std::thread> pool;
  for (unsigned t = 0; t < threads; ++t) pool.emplace_back(work);
  for (auto& thread : pool) thread.join();
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - wall_start).count();
  const double cpu = static_cast<double>(std::clock() - cpu_start) / CLOCKS_PER_SEC;
  std::printf(
      "{\"implementation\": \"ssa\", \"threads\": %u, \"bytes\": %zu, \"tokens\": %zu, \"seconds\": %.3f, "
      "\"cpu_seconds\": %.3f, \"mb_per_s\": %.2f, \"mb_per_cpu_s\": %.2f}\n",
      threads, bytes, tokens.load(), wall, cpu, bytes / wall / 1e6, bytes / cpu / 1e6);
  std::fflush(stdout);
}

void run_bench(const BenchOptions& o) {
  if (o.threads == 0) throw UsageError("--threads must be at least 1");
  const auto tokenizer = data::Tokenizer::from_file(o.tokenizer);
  std::ifstream in(o.input, std::ios::binary);
  if (!in) throw UsageError(fmt::format("cannot open --input {}", o.input));
  std::ostringstream content;
  content << in.rdbuf();
  const std::string text = content.str();
  const auto pieces = split_at_lines(text, size_t{1} << 20);
  bench_tokenizer(tokenizer, pieces, text.size(), 1);
  if (o.threads > 1) bench_tokenizer(tokenizer, pieces, text.size(), o.threads);
}

}  // namespace

void add_data_codec_commands(CLI::App& data) {
  auto encode_tokenizer = std::make_shared<std::string>();
  auto* encode = data.add_subcommand("encode", "Read text from stdin, print its token ids (one line, spaces)");
  encode->add_option("--tokenizer", *encode_tokenizer, "tokenizer.json (byte-level BPE, e.g. Llama-3)")->required();
  encode->callback([encode_tokenizer] { run_encode(*encode_tokenizer); });

  auto decode_tokenizer = std::make_shared<std::string>();
  auto* decode = data.add_subcommand("decode", "Read token ids (whitespace-separated) from stdin, print the text");
  decode->add_option("--tokenizer", *decode_tokenizer, "tokenizer.json (byte-level BPE, e.g. Llama-3)")->required();
  decode->callback([decode_tokenizer] { run_decode(*decode_tokenizer); });

  auto bench_options = std::make_shared<BenchOptions>();
  auto* bench = data.add_subcommand("bench-tokenizer", "Tokenizer throughput, one thread and --threads threads");
  bench->group("");  // hidden: a development tool (scripts/bench-tokenizer.sh)
  bench->add_option("--tokenizer", bench_options->tokenizer, "tokenizer.json")->required();
  bench->add_option("--input", bench_options->input, "Text file to encode")->required();
  bench->add_option("--threads", bench_options->threads, "Threads of the parallel run (default: all cores)");
  bench->callback([bench_options] { run_bench(*bench_options); });
}

}  // namespace ssa::cli
