#include "ssa/data/token_shard.h"

#include <fmt/format.h>

#include <cstring>

#include "ssa/data/shard_metadata.h"
#include "ssa/io/atomic_file.h"
#include "ssa/util/error.h"

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "token files are little-endian; reads assume a little-endian host");

namespace ssa::data {
namespace fs = std::filesystem;

namespace {

constexpr uint64_t kLlmcHeaderInts = 256;
constexpr uint64_t kLlmcHeaderBytes = kLlmcHeaderInts * 4;
constexpr int32_t kLlmcGpt2Magic = 20240520;
constexpr int32_t kLlmcLlama3Magic = 20240801;

uint64_t read_u64(const std::byte* at) {
  uint64_t value;
  std::memcpy(&value, at, 8);
  return value;
}

fs::path companion(const fs::path& token_file, const char* suffix) {
  fs::path path = token_file;
  path += suffix;
  return path;
}

// NAME.ds.index or NAME.ds.metadata; a missing one means an incomplete or damaged shard.
fs::path require_companion(const fs::path& token_file, const char* suffix) {
  const fs::path path = companion(token_file, suffix);
  std::error_code error;
  if (!fs::is_regular_file(path, error)) {
    throw FormatError(fmt::format("{}: companion file {} is missing (incomplete shard?)", token_file.string(),
                                  path.filename().string()));
  }
  return path;
}

void check_width(const fs::path& file, uint32_t width, uint32_t expected_width, const char* source) {
  if (expected_width != 0 && width != expected_width) {
    throw FormatError(fmt::format("{}: {} says {}-byte tokens but the configuration says {}-byte tokens", file.string(),
                                  source, width, expected_width));
  }
}

}  // namespace

TokenShard TokenShard::open(const fs::path& token_file, ShardFormat format, uint32_t expected_width,
                            const DocumentSeparator& separator) {
  TokenShard shard;
  shard.path_ = token_file;
  shard.format_ = format;
  shard.file_ = io::MappedFile::open(token_file);
  const uint64_t size = shard.file_.size();
  const std::string name = token_file.string();

  if (format == ShardFormat::datatrove) {
    const fs::path index_path = require_companion(token_file, ".index");
    const fs::path metadata_path = require_companion(token_file, ".metadata");
    shard.index_ = io::MappedFile::open(index_path);
    const ShardMetadata metadata = parse_shard_metadata(io::read_file(metadata_path), metadata_path);
    shard.width_ = metadata.token_width;
    shard.tokenizer_ = metadata.tokenizer;
    check_width(metadata_path, shard.width_, expected_width, "the metadata");
    if (size % shard.width_ != 0) {
      throw FormatError(fmt::format("{}: {} bytes is not a multiple of the {}-byte token size (truncated?)", name, size,
                                    shard.width_));
    }
    shard.tokens_ = shard.file_.data();
    shard.token_count_ = size / shard.width_;
    if (shard.index_.size() % 8 != 0) {
      throw FormatError(fmt::format("{}: {} bytes is not a multiple of 8 (uint64 document ends; truncated?)",
                                    index_path.string(), shard.index_.size()));
    }
    shard.document_count_ = shard.index_.size() / 8;
    uint64_t previous = 0;
    for (uint64_t d = 0; d < shard.document_count_; ++d) {
      const uint64_t end = read_u64(shard.index_.data() + 8 * d);
      if (end < previous) {
        throw FormatError(fmt::format("{}: document {} ends at token {}, before the previous end {} (index not increasing)",
                                      index_path.string(), d, end, previous));
      }
      previous = end;
    }
    if (previous > shard.token_count_) {
      throw FormatError(fmt::format("{}: last document ends at token {} but {} holds only {} tokens (truncated .ds?)",
                                    index_path.string(), previous, token_file.filename().string(), shard.token_count_));
    }
    if (previous < shard.token_count_) {
      throw FormatError(fmt::format("{}: {} tokens after the last document end {} of {}", name,
                                    shard.token_count_ - previous, previous, index_path.filename().string()));
    }
    if (metadata.token_count != shard.token_count_) {
      throw FormatError(fmt::format("{}: says {} tokens but {} holds {} tokens of {} bytes", metadata_path.string(),
                                    metadata.token_count, token_file.filename().string(), shard.token_count_,
                                    shard.width_));
    }
    return shard;
  }

  uint64_t data_offset = 0;
  if (format == ShardFormat::llmc) {
    if (size < kLlmcHeaderBytes) {
      throw FormatError(fmt::format("{}: {} bytes, smaller than the {}-byte llm.c header", name, size, kLlmcHeaderBytes));
    }
    int32_t header[3];
    std::memcpy(header, shard.file_.data(), sizeof header);
    if (header[0] == kLlmcGpt2Magic && header[1] == 1) {
      shard.width_ = 2;
    } else if (header[0] == kLlmcLlama3Magic && header[1] == 7) {
      shard.width_ = 4;
    } else {
      throw FormatError(fmt::format("{}: llm.c header magic {} version {} (expected {} version 1 or {} version 7)", name,
                                    header[0], header[1], kLlmcGpt2Magic, kLlmcLlama3Magic));
    }
    check_width(token_file, shard.width_, expected_width, "the llm.c header");
    const uint64_t declared = static_cast<uint32_t>(header[2]);
    if (header[2] < 0 || kLlmcHeaderBytes + declared * shard.width_ != size) {
      throw FormatError(fmt::format("{}: header says {} tokens ({} bytes with the header) but the file has {} bytes", name,
                                    header[2], kLlmcHeaderBytes + declared * shard.width_, size));
    }
    data_offset = kLlmcHeaderBytes;
  } else {
    shard.width_ = format == ShardFormat::raw_u16 ? 2 : 4;
    check_width(token_file, shard.width_, expected_width, to_string(format).data());
    if (size % shard.width_ != 0) {
      throw FormatError(fmt::format("{}: {} bytes is not a multiple of the {}-byte token size (truncated?)", name, size,
                                    shard.width_));
    }
  }
  shard.tokens_ = shard.file_.data() + data_offset;
  shard.token_count_ = (size - data_offset) / shard.width_;

  auto ends = std::make_shared<std::vector<uint64_t>>();
  uint64_t last_end = 0;
  for (uint64_t i = 0; i < shard.token_count_; ++i) {
    if (shard.token(i) != separator.token) continue;
    const uint64_t end = separator.ends_document ? i + 1 : i;
    if (end > last_end) {
      ends->push_back(end);
      last_end = end;
    }
  }
  if (last_end < shard.token_count_) ends->push_back(shard.token_count_);
  ends->shrink_to_fit();
  shard.document_count_ = ends->size();
  shard.scanned_ends_ = std::move(ends);
  return shard;
}

uint64_t TokenShard::document_end(uint64_t document) const {
  if (scanned_ends_) return (*scanned_ends_)[document];
  return read_u64(index_.data() + 8 * document);
}

uint32_t TokenShard::token(uint64_t index) const {
  if (width_ == 2) {
    uint16_t value;
    std::memcpy(&value, tokens_ + 2 * index, 2);
    return value;
  }
  uint32_t value;
  std::memcpy(&value, tokens_ + 4 * index, 4);
  return value;
}

void TokenShard::copy_tokens(uint64_t begin, uint64_t count, uint32_t* out) const {
  if (width_ == 4) {
    std::memcpy(out, tokens_ + 4 * begin, 4 * count);
    return;
  }
  const std::byte* at = tokens_ + 2 * begin;
  for (uint64_t k = 0; k < count; ++k) {
    uint16_t value;
    std::memcpy(&value, at + 2 * k, 2);
    out[k] = value;
  }
}

}  // namespace ssa::data
