#include "ssa/data/tokenize_corpus.h"

#include <fmt/format.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <thread>

#include "ssa/data/index_permutation.h"
#include "ssa/data/input_documents.h"
#include "ssa/data/shard_set.h"
#include "ssa/data/stable_hash.h"
#include "ssa/io/remove_tree.h"
#include "ssa/util/error.h"

namespace ssa::data {
namespace fs = std::filesystem;

namespace {

// Documents are read and written in chunks; the threads encode one chunk while the next is read.
constexpr std::size_t kChunkDocuments = 4096;
constexpr std::size_t kChunkBytes = std::size_t{16} << 20;

// Persistent worker threads that run task(0..count-1) for one chunk at a time. Persistent, not
// per chunk: the tokenizer keeps per-thread caches that new threads would start cold.
class WorkerPool {
 public:
  explicit WorkerPool(unsigned threads) {
    for (unsigned t = 0; t < threads; ++t) threads_.emplace_back([this] { work(); });
  }
  ~WorkerPool() {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_all();
    for (auto& thread : threads_) thread.join();
  }

  void start(std::size_t count, std::function<void(std::size_t)> task) {
    std::lock_guard lock(mutex_);
    task_ = std::move(task);
    count_ = count;
    next_ = 0;
    unfinished_ = count;
    error_ = nullptr;
    ++generation_;
    wake_.notify_all();
  }

  // Waits for the chunk; rethrows the first exception a task threw.
  void wait() {
    std::unique_lock lock(mutex_);
    done_.wait(lock, [this] { return unfinished_ == 0; });
    if (error_) std::rethrow_exception(error_);
  }

 private:
  void work() {
    uint64_t seen = 0;
    std::unique_lock lock(mutex_);
    for (;;) {
      wake_.wait(lock, [&] { return stopping_ || generation_ != seen; });
      if (generation_ == seen) return;  // stopping with no chunk left
      seen = generation_;
      while (next_ < count_) {
        const std::size_t index = next_++;
        lock.unlock();
        std::exception_ptr error;
        try {
          task_(index);
        } catch (...) {
          error = std::current_exception();
        }
        lock.lock();
        if (error && !error_) error_ = error;
        if (--unfinished_ == 0) done_.notify_all();
      }
    }
  }

  std::mutex mutex_;
  std::condition_variable wake_, done_;
  std::vector<std::thread> threads_;
  std::function<void(std::size_t)> task_;
  std::size_t count_ = 0, next_ = 0, unfinished_ = 0;
  uint64_t generation_ = 0;
  bool stopping_ = false;
  std::exception_ptr error_;
};

struct EncodedDocument {
  std::vector<uint32_t> tokens;
  std::string error;  // non-empty for a malformed line
};

bool read_chunk(InputDocumentReader& reader, std::vector<RawDocument>& chunk) {
  chunk.clear();
  std::size_t bytes = 0;
  RawDocument document;
  while (chunk.size() < kChunkDocuments && bytes < kChunkBytes && reader.next(document)) {
    bytes += document.payload.size();
    chunk.push_back(std::move(document));
  }
  return !chunk.empty();
}

// Removes the shuffle staging folder however tokenize_corpus ends.
class StagingFolder {
 public:
  explicit StagingFolder(fs::path path) : path_(std::move(path)) {}
  ~StagingFolder() {
    std::error_code ignored;
    io::remove_tree(path_, ignored);
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

}  // namespace

TokenizeSummary tokenize_corpus(const TokenizeOptions& options, const TokenEncoder& encoder,
                                const TokenizeProgressCallback& progress) {
  if (options.threads == 0) throw UsageError("--threads must be at least 1");
  const auto start = std::chrono::steady_clock::now();
  const auto seconds = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(); };

  TokenizeSummary summary;
  InputDocumentReader reader(list_input_files(options.inputs));
  summary.input_files = reader.files().size();

  ShardWriterOptions final_options{options.output_folder, options.name, options.token_width, options.tokenizer_name,
                                   options.shard_tokens};
  std::optional<StagingFolder> staging;
  ShardWriterOptions first_pass = final_options;
  if (options.shuffle_seed) {
    // Shuffling needs every document first: tokenize into a hidden staging set, then copy the
    // documents in shuffled order. Readers list only the folder's top level, so they never see it.
    staging.emplace(options.output_folder / fmt::format(".{}.unshuffled-{}", options.name, ::getpid()));
    std::error_code ignored;
    io::remove_tree(staging->path(), ignored);
    first_pass.folder = staging->path();
    first_pass.name = "unshuffled";
  }
  // Checks the destination before any work (ShardWriter refuses a folder with shards of the name).
  ShardWriter final_writer(final_options);
  std::optional<ShardWriter> staging_writer;
  if (staging) staging_writer.emplace(first_pass);
  ShardWriter& writer = staging ? *staging_writer : final_writer;

  std::vector<RawDocument> chunk, next_chunk;
  std::vector<EncodedDocument> encoded;
  WorkerPool pool(options.threads);  // declared after the chunks: joined before they go
  const auto encode_one = [&](std::size_t k) {
    EncodedDocument& out = encoded[k];
    out.tokens.clear();
    out.error.clear();
    const auto text = document_text(chunk[k], reader.files(), options.text_field, out.error);
    if (!text) return;
    if (options.bos_id) out.tokens.push_back(*options.bos_id);
    const std::vector<uint32_t> ids = encoder(*text);
    out.tokens.insert(out.tokens.end(), ids.begin(), ids.end());
    out.tokens.push_back(options.eos_id);
  };

  bool more = read_chunk(reader, chunk);
  while (more) {
    encoded.resize(chunk.size());
    pool.start(chunk.size(), encode_one);
    more = read_chunk(reader, next_chunk);
    pool.wait();
    for (const EncodedDocument& document : encoded) {
      if (!document.error.empty()) {
        if (!options.skip_bad) throw UsageError(document.error + " (--skip-bad skips such lines)");
        ++summary.skipped;
        continue;
      }
      writer.add_document(document.tokens);
      ++summary.documents;
      summary.tokens += document.tokens.size();
    }
    std::swap(chunk, next_chunk);
    if (progress) progress(TokenizeProgress{"tokenizing", reader.bytes_read(), summary.documents, summary.tokens, seconds()});
  }
  summary.input_bytes = reader.bytes_read();

  if (!staging) {
    summary.shards = final_writer.finish();
  } else if (summary.documents == 0) {
    staging_writer->finish();
  } else {
    staging_writer->finish();
    const ShardSet unshuffled = ShardSet::open(staging->path(), ShardSetOptions{ShardFormat::datatrove, options.token_width, {}});
    const uint64_t count = unshuffled.document_count();
    const IndexPermutation order(count, mix64(*options.shuffle_seed));
    std::vector<uint32_t> tokens;
    for (uint64_t k = 0; k < count; ++k) {
      const auto document = unshuffled.document(order(k));
      tokens.resize(document.length);
      document.shard->copy_tokens(document.begin, document.length, tokens.data());
      final_writer.add_document(tokens);
      if (progress && (k + 1) % 65536 == 0) {
        progress(TokenizeProgress{"shuffling", summary.input_bytes, k + 1, summary.tokens, seconds()});
      }
    }
    summary.shards = final_writer.finish();
  }
  summary.seconds = seconds();
  if (progress) progress(TokenizeProgress{"done", summary.input_bytes, summary.documents, summary.tokens, summary.seconds});
  return summary;
}

}  // namespace ssa::data
