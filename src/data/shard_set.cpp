#include "ssa/data/shard_set.h"

#include <fmt/format.h>

#include <algorithm>

#include "ssa/data/stable_hash.h"
#include "ssa/util/error.h"

namespace ssa::data {
namespace fs = std::filesystem;

namespace {

bool ends_with(const std::string& text, std::string_view suffix) {
  return text.size() >= suffix.size() && text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::vector<fs::path> list_token_files(const fs::path& folder, ShardFormat format) {
  const std::string_view suffix = format == ShardFormat::datatrove ? ".ds" : ".bin";
  std::vector<fs::path> files;
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(folder)) {
    const std::string name = entry.path().filename().string();
    names.push_back(name);
    if (ends_with(name, suffix) && entry.is_regular_file()) files.push_back(entry.path());
  }
  if (format == ShardFormat::datatrove) {
    // An index without its tokens is a shard copied or written only in part. (A lone
    // NAME.ds.metadata is legitimate: datatrove's merger writes the folder's total that way.)
    for (const auto& name : names) {
      if (!ends_with(name, ".ds.index")) continue;
      const std::string tokens = name.substr(0, name.size() - 6);
      if (std::find(names.begin(), names.end(), tokens) == names.end()) {
        throw FormatError(fmt::format("{}: {} has no {} beside it (incomplete shard?)", (folder / name).string(), name,
                                      tokens));
      }
    }
  }
  std::sort(files.begin(), files.end());
  return files;
}

}  // namespace

ShardSet ShardSet::open(const fs::path& path, const ShardSetOptions& options) {
  std::error_code error;
  const auto status = fs::status(path, error);
  if (error || !fs::exists(status)) throw UsageError(fmt::format("data path {} does not exist", path.string()));
  std::vector<fs::path> files;
  if (fs::is_directory(status)) {
    files = list_token_files(path, options.format);
    if (files.empty()) {
      throw UsageError(fmt::format("data folder {} holds no {} files (format {})", path.string(),
                                   options.format == ShardFormat::datatrove ? "*.ds" : "*.bin", to_string(options.format)));
    }
  } else {
    files.push_back(path);
  }

  ShardSet set;
  set.path_ = path;
  set.format_ = options.format;
  set.width_ = options.expected_width;
  Fnv1a64 hash;
  hash.add_field(to_string(options.format));
  for (const auto& file : files) {
    TokenShard shard = TokenShard::open(file, options.format, options.expected_width, options.separator);
    if (!set.shards_.empty() && shard.token_width() != set.width_) {
      throw FormatError(fmt::format("{}: {}-byte tokens but {} has {}-byte tokens (one width per data source)",
                                    file.string(), shard.token_width(), set.shards_.front().path().filename().string(),
                                    set.width_));
    }
    set.width_ = shard.token_width();
    set.document_starts_.push_back(set.document_starts_.back() + shard.document_count());
    set.token_count_ += shard.token_count();
    hash.add_field(file.filename().string());
    hash.add(shard.file_bytes());
    hash.add(shard.token_count());
    hash.add(shard.document_count());
    set.shards_.push_back(std::move(shard));
  }
  hash.add(set.width_);
  set.fingerprint_ = fmt::format("{:016x}", hash.value());
  return set;
}

ShardSet::Document ShardSet::document(uint64_t d) const {
  // document_starts_ = {0, end of shard 0, end of shard 1, ...}: the shard is the last start <= d.
  const auto after = std::upper_bound(document_starts_.begin(), document_starts_.end(), d);
  const size_t shard_index = static_cast<size_t>(after - document_starts_.begin()) - 1;
  const TokenShard& shard = shards_[shard_index];
  const uint64_t local = d - document_starts_[shard_index];
  const uint64_t begin = shard.document_begin(local);
  return Document{&shard, begin, shard.document_end(local) - begin};
}

}  // namespace ssa::data
