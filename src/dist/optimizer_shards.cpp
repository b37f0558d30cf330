#include "ssa/dist/optimizer_shards.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <regex>

#include "ssa/io/safetensors.h"
#include "ssa/train/checkpoint_store.h"
#include "ssa/util/error.h"

namespace ssa::dist {
namespace fs = std::filesystem;
namespace {

constexpr const char* kMoments[] = {"exp_avg.", "exp_avg_sq."};

struct ShardFile {
  io::SafetensorsFile file;
  std::map<std::string, std::pair<int64_t, int64_t>> pieces;
};

std::vector<ShardFile> open_shards(const fs::path& folder) {
  const std::regex pattern(std::string(train::kOptimizerShardPrefix) + R"((\d+)-of-(\d+)\.safetensors)");
  std::map<int64_t, fs::path> found;
  int64_t world = -1;
  for (const auto& entry : fs::directory_iterator(folder)) {
    std::smatch m;
    const std::string name = entry.path().filename().string();
    if (!std::regex_match(name, m, pattern)) continue;
    const int64_t w = std::stoll(m[2].str());
    if (world >= 0 && w != world) {
      throw FormatError(fmt::format("checkpoint {} mixes optimizer shards of {} and {} ranks", folder.string(), world, w));
    }
    world = w;
    found[std::stoll(m[1].str())] = entry.path();
  }
  if (world < 0) throw FormatError(fmt::format("checkpoint {} is damaged: it has no optimizer state", folder.string()));
  std::vector<ShardFile> shards;
  for (int64_t r = 0; r < world; ++r) {
    auto it = found.find(r);
    if (it == found.end()) {
      throw FormatError(fmt::format("checkpoint {} is damaged: optimizer shard {} is missing", folder.string(),
                                    optimizer_shard_name(r, world)));
    }
    ShardFile shard{io::SafetensorsFile::open(it->second), {}};
    const auto& meta = shard.file.metadata();
    auto pieces = meta.find("pieces");
    try {
      if (pieces == meta.end()) throw std::runtime_error("no 'pieces' metadata");
      const auto table = nlohmann::json::parse(pieces->second);
      for (const auto& [name, range] : table.items()) {
        shard.pieces[name] = {range.at(0).get<int64_t>(), range.at(1).get<int64_t>()};
      }
    } catch (const std::exception& e) {
      throw FormatError(fmt::format("{}: damaged piece table ({})", it->second.string(), e.what()));
    }
    shards.push_back(std::move(shard));
  }
  return shards;
}

}  // namespace

std::vector<StatePiece> whole_pieces(const model::NamedTensors& parameters) {
  std::vector<StatePiece> pieces;
  for (const auto& [name, tensor] : parameters) pieces.push_back({name, 0, tensor.numel(), tensor.sizes().vec()});
  return pieces;
}

std::string optimizer_shard_name(int64_t rank, int64_t world) {
  return fmt::format("{}{:05d}-of-{:05d}.safetensors", train::kOptimizerShardPrefix, rank, world);
}

void write_optimizer_shard(const fs::path& folder, int64_t rank, int64_t world, const model::NamedTensors& state,
                           const std::vector<StatePiece>& pieces, int64_t updates) {
  nlohmann::json table = nlohmann::json::object();
  for (const auto& piece : pieces) table[piece.name] = {piece.begin, piece.end};
  model::write_tensor_file(folder / optimizer_shard_name(rank, world), state,
                           {{"optimizer", "adamw"},
                            {"updates", std::to_string(updates)},
                            {"rank", std::to_string(rank)},
                            {"world_size", std::to_string(world)},
                            {"pieces", table.dump()}});
}

std::map<std::string, torch::Tensor> read_optimizer_state(const fs::path& folder,
                                                          const std::map<std::string, torch::Tensor>& whole,
                                                          const std::vector<StatePiece>& pieces) {
  std::map<std::string, torch::Tensor> out;
  std::vector<ShardFile> shards;
  if (whole.empty()) shards = open_shards(folder);
  for (const auto& piece : pieces) {
    const auto& shape = piece.shape;
    for (const char* moment : kMoments) {
      const std::string key = moment + piece.name;
      if (!whole.empty()) {
        auto it = whole.find(key);
        if (it == whole.end()) {
          throw FormatError(fmt::format("{}: optimizer state '{}' is missing", folder.string(), key));
        }
        if (it->second.numel() < piece.end) {
          throw FormatError(fmt::format("{}: optimizer state '{}' has {} elements, expected at least {}",
                                        folder.string(), key, it->second.numel(), piece.end));
        }
        out[key] = it->second.reshape({-1}).narrow(0, piece.begin, piece.end - piece.begin).reshape(shape).clone();
        continue;
      }
      auto target = torch::empty({piece.end - piece.begin}, torch::kFloat32);
      int64_t covered = 0;
      for (const auto& shard : shards) {
        auto range = shard.pieces.find(piece.name);
        if (range == shard.pieces.end()) continue;
        const int64_t begin = std::max(piece.begin, range->second.first);
        const int64_t end = std::min(piece.end, range->second.second);
        if (begin >= end) continue;
        const auto stored = model::to_tensor(shard.file.tensor(key), shard.file.path().string());
        if (stored.numel() != range->second.second - range->second.first) {
          throw FormatError(fmt::format("{}: '{}' does not match its piece table", shard.file.path().string(), key));
        }
        target.narrow(0, begin - piece.begin, end - begin).copy_(stored.narrow(0, begin - range->second.first, end - begin));
        covered += end - begin;
      }
      if (covered != piece.end - piece.begin) {
        throw FormatError(fmt::format("checkpoint {}: the optimizer shards cover {} of {} elements of '{}'",
                                      folder.string(), covered, piece.end - piece.begin, key));
      }
      out[key] = target.reshape(shape);
    }
  }
  return out;
}

}  // namespace ssa::dist
