// The data loader's part of trainer_state.json. The position is one number, the global rows
// consumed; the rest records what fixes the global row order, so that resuming with a different
// shard set, seed, packing or mixture is refused instead of silently changing the data.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace ssa::data {

struct SourceState {
  std::string path;         // informational (a moved folder may resume)
  std::string fingerprint;  // ShardSet::fingerprint()
  uint64_t shards = 0;
  uint64_t tokens = 0;
  uint64_t documents = 0;
  uint64_t validation_documents = 0;
};

struct LoaderState {
  uint64_t rows_consumed = 0;
  std::string fingerprint;  // of all sources together
  uint64_t seed = 0;
  bool shuffle = true;
  std::string packing;
  uint64_t seq_len = 0;
  uint32_t eos_id = 0;
  std::vector<double> weights;  // normalised
  std::vector<SourceState> sources;

  nlohmann::json to_json() const;
  // Throws FormatError naming the key that is missing or has the wrong type.
  static LoaderState from_json(const nlohmann::json& json);
};

}  // namespace ssa::data
