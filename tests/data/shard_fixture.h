// Synthetic documents and shard folders for the shard and loader tests.
#pragma once

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "ssa/data/shard_writer.h"

namespace ssa::test {

using Document = std::vector<uint32_t>;

// `count` documents whose tokens say where they come from: token = base + 1000 * d + offset + 1
// (wrapping below `modulo`), each followed by `eos`. Lengths (with the EOS) in [min_length,
// max_length].
inline std::vector<Document> make_documents(uint64_t count, uint64_t min_length, uint64_t max_length, uint32_t eos,
                                            uint32_t seed = 1, uint32_t base = 0, uint32_t modulo = 60000) {
  std::mt19937 random(seed);
  std::uniform_int_distribution<uint64_t> length(min_length, max_length);
  std::vector<Document> documents(count);
  for (uint64_t d = 0; d < count; ++d) {
    const uint64_t n = length(random);
    for (uint64_t k = 0; k + 1 < n; ++k) {
      uint32_t token = base + static_cast<uint32_t>((1000 * d + k + 1) % modulo);
      if (token == eos) ++token;
      documents[d].push_back(token);
    }
    documents[d].push_back(eos);
  }
  return documents;
}

inline std::vector<data::WrittenShard> write_shards(const std::filesystem::path& folder,
                                                    const std::vector<Document>& documents, uint32_t width = 2,
                                                    uint64_t shard_tokens = 1000, const std::string& name = "shard") {
  data::ShardWriter writer(data::ShardWriterOptions{folder, name, width, "test-tokenizer", shard_tokens});
  for (const auto& document : documents) writer.add_document(document);
  return writer.finish();
}

inline std::string read_bytes(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

inline void write_bytes(const std::filesystem::path& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
}

}  // namespace ssa::test
