#include "ssa/data/loader_state.h"

#include <fmt/format.h>

#include "ssa/util/error.h"

namespace ssa::data {

using nlohmann::json;

json LoaderState::to_json() const {
  json source_list = json::array();
  for (const auto& source : sources) {
    source_list.push_back({{"path", source.path},
                           {"fingerprint", source.fingerprint},
                           {"shards", source.shards},
                           {"tokens", source.tokens},
                           {"documents", source.documents},
                           {"validation_documents", source.validation_documents}});
  }
  return json{{"rows_consumed", rows_consumed}, {"fingerprint", fingerprint}, {"seed", seed},
              {"shuffle", shuffle},             {"packing", packing},         {"seq_len", seq_len},
              {"eos_id", eos_id},               {"weights", weights},         {"sources", source_list}};
}

namespace {

const json& field(const json& object, const char* key, const std::string& where) {
  if (!object.is_object() || !object.contains(key)) {
    throw FormatError(fmt::format("data loader state: {}{} is missing", where, key));
  }
  return object.at(key);
}

template <typename T>
T get(const json& object, const char* key, const std::string& where = "") {
  const json& value = field(object, key, where);
  try {
    return value.get<T>();
  } catch (const json::exception&) {
    throw FormatError(fmt::format("data loader state: {}{} has the wrong type ({})", where, key, value.type_name()));
  }
}

}  // namespace

LoaderState LoaderState::from_json(const json& object) {
  LoaderState state;
  state.rows_consumed = get<uint64_t>(object, "rows_consumed");
  state.fingerprint = get<std::string>(object, "fingerprint");
  state.seed = get<uint64_t>(object, "seed");
  state.shuffle = get<bool>(object, "shuffle");
  state.packing = get<std::string>(object, "packing");
  state.seq_len = get<uint64_t>(object, "seq_len");
  state.eos_id = get<uint32_t>(object, "eos_id");
  state.weights = get<std::vector<double>>(object, "weights");
  const json& sources = field(object, "sources", "");
  if (!sources.is_array()) throw FormatError("data loader state: sources is not an array");
  for (std::size_t k = 0; k < sources.size(); ++k) {
    const std::string where = fmt::format("sources[{}].", k);
    SourceState source;
    source.path = get<std::string>(sources[k], "path", where);
    source.fingerprint = get<std::string>(sources[k], "fingerprint", where);
    source.shards = get<uint64_t>(sources[k], "shards", where);
    source.tokens = get<uint64_t>(sources[k], "tokens", where);
    source.documents = get<uint64_t>(sources[k], "documents", where);
    source.validation_documents = get<uint64_t>(sources[k], "validation_documents", where);
    state.sources.push_back(std::move(source));
  }
  return state;
}

}  // namespace ssa::data
