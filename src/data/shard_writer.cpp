#include "ssa/data/shard_writer.h"

#include <fmt/format.h>

#include <cstring>

#include "ssa/data/shard_metadata.h"
#include "ssa/util/error.h"

namespace ssa::data {
namespace fs = std::filesystem;

std::string shard_file_name(const std::string& name, uint64_t index) { return fmt::format("{}_{:05d}.ds", name, index); }

ShardWriter::ShardWriter(ShardWriterOptions options) : options_(std::move(options)) {
  if (options_.token_width != 2 && options_.token_width != 4) {
    throw UsageError(fmt::format("token width {} (expected 2 or 4 bytes)", options_.token_width));
  }
  if (options_.shard_tokens == 0) throw UsageError("shard size must be at least one token");
  if (options_.name.empty() || options_.name.find('/') != std::string::npos) {
    throw UsageError(fmt::format("shard name '{}' must be a non-empty file name prefix", options_.name));
  }
  std::error_code error;
  fs::create_directories(options_.folder, error);
  if (error) throw UsageError(fmt::format("cannot create {}: {}", options_.folder.string(), error.message()));
  const std::string prefix = options_.name + "_";
  for (const auto& entry : fs::directory_iterator(options_.folder)) {
    const std::string file = entry.path().filename().string();
    if (file.rfind(prefix, 0) == 0 && file.find(".ds") != std::string::npos && file.find(".tmp-") == std::string::npos) {
      throw UsageError(fmt::format("{} already holds shards named {}*.ds ({}); choose another folder or name",
                                   options_.folder.string(), prefix, file));
    }
  }
}

ShardWriter::~ShardWriter() = default;  // an uncommitted AtomicFileWriter removes its temporary file

void ShardWriter::open_shard() {
  tokens_file_ = std::make_unique<io::AtomicFileWriter>(options_.folder / shard_file_name(options_.name, written_.size()));
  document_ends_.clear();
}

void ShardWriter::add_document(const uint32_t* tokens, std::size_t count) {
  if (tokens_file_ && !document_ends_.empty() && document_ends_.back() >= options_.shard_tokens) close_shard();
  if (!tokens_file_) open_shard();
  const uint64_t limit = options_.token_width == 2 ? 0xffffull : 0xffffffffull;
  encoded_.resize(count * options_.token_width);
  for (std::size_t k = 0; k < count; ++k) {
    if (tokens[k] > limit) {
      throw UsageError(fmt::format("token id {} does not fit in {}-byte tokens", tokens[k], options_.token_width));
    }
    if (options_.token_width == 2) {
      const uint16_t narrow = static_cast<uint16_t>(tokens[k]);
      std::memcpy(encoded_.data() + 2 * k, &narrow, 2);
    }
  }
  if (options_.token_width == 4) std::memcpy(encoded_.data(), tokens, 4 * count);
  tokens_file_->write(encoded_.data(), encoded_.size());
  document_ends_.push_back((document_ends_.empty() ? 0 : document_ends_.back()) + count);
}

void ShardWriter::close_shard() {
  const fs::path path = tokens_file_->path();
  const uint64_t tokens = document_ends_.empty() ? 0 : document_ends_.back();

  io::AtomicFileWriter index(fs::path(path.string() + ".index"));
  index.write(document_ends_.data(), document_ends_.size() * sizeof(uint64_t));
  io::AtomicFileWriter metadata(fs::path(path.string() + ".metadata"));
  metadata.write(format_shard_metadata(ShardMetadata{options_.tokenizer, options_.token_width, tokens}));

  tokens_file_->commit();
  index.commit();
  metadata.commit();
  tokens_file_.reset();
  written_.push_back(WrittenShard{path, tokens, document_ends_.size()});
}

std::vector<WrittenShard> ShardWriter::finish() {
  if (tokens_file_) close_shard();
  return written_;
}

}  // namespace ssa::data
