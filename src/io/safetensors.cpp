// Hand-written on top of nlohmann-json: no safetensors library for C++ is packaged in Debian
// (where our dependencies come from), and the format is a JSON header plus raw bytes.
#include "ssa/io/safetensors.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <limits>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>

#include "ssa/io/atomic_file.h"
#include "ssa/io/mapped_file.h"
#include "ssa/util/error.h"

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "safetensors data is little endian and is handed out without byte swapping");

namespace ssa::io {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// The reference implementation refuses larger headers; so do we, before allocating anything.
constexpr uint64_t kMaxHeaderBytes = 100'000'000;
constexpr const char* kMetadataKey = "__metadata__";

struct DTypeEntry {
  DType dtype;
  std::string_view name;
  std::size_t size;
};

constexpr DTypeEntry kDTypes[] = {
    {DType::kBool, "BOOL", 1}, {DType::kU8, "U8", 1},   {DType::kI8, "I8", 1},     {DType::kF8E5M2, "F8_E5M2", 1},
    {DType::kF8E4M3, "F8_E4M3", 1}, {DType::kI16, "I16", 2}, {DType::kU16, "U16", 2}, {DType::kF16, "F16", 2},
    {DType::kBF16, "BF16", 2}, {DType::kI32, "I32", 4}, {DType::kU32, "U32", 4}, {DType::kF32, "F32", 4},
    {DType::kF64, "F64", 8},   {DType::kI64, "I64", 8}, {DType::kU64, "U64", 8},
};

const DTypeEntry& entry_of(DType dtype) { return kDTypes[static_cast<std::size_t>(dtype)]; }

[[noreturn]] void fail(const fs::path& file, const std::string& what) {
  throw FormatError(fmt::format("{}: {}", file.string(), what));
}

std::string json_string(std::string_view name) { return json(std::string(name)).dump(); }

// The header is JSON, so every name and metadata string must be valid UTF-8.
bool is_valid_utf8(const std::string& text) {
  try {
    (void)json(text).dump();
    return true;
  } catch (const json::type_error&) {
    return false;
  }
}

std::optional<uint64_t> byte_count(const std::vector<int64_t>& shape, DType dtype) {
  const auto count = element_count(shape);
  uint64_t bytes = 0;
  if (!count || __builtin_mul_overflow(*count, dtype_size(dtype), &bytes)) return std::nullopt;
  return bytes;
}

// nlohmann keeps the last of duplicate keys silently; a header with two entries of one name is
// ambiguous, so any duplicate key in any object is an error.
json parse_without_duplicates(std::string_view text, const fs::path& file, const char* what) {
  std::vector<std::set<std::string>> open_objects;
  const json::parser_callback_t reject_duplicates = [&](int, json::parse_event_t event, json& parsed) {
    if (event == json::parse_event_t::object_start) {
      open_objects.emplace_back();
    } else if (event == json::parse_event_t::object_end) {
      open_objects.pop_back();
    } else if (event == json::parse_event_t::key) {
      const auto& key = parsed.get_ref<const std::string&>();
      if (!open_objects.back().insert(key).second) fail(file, fmt::format("{} has the key {} twice", what, json_string(key)));
    }
    return true;
  };
  try {
    return json::parse(text.begin(), text.end(), reject_duplicates);
  } catch (const json::parse_error& e) {
    fail(file, fmt::format("{} is not valid JSON: {}", what, e.what()));
  }
}

uint64_t read_le_u64(const std::byte* bytes) {
  uint64_t value = 0;
  for (int i = 7; i >= 0; --i) value = (value << 8) | static_cast<uint64_t>(bytes[i]);
  return value;
}

TensorInfo parse_tensor_entry(const std::string& name, const json& entry, uint64_t data_size, const fs::path& file) {
  const std::string where = "tensor " + json_string(name);
  if (!entry.is_object()) fail(file, fmt::format("{}: entry is not an object", where));
  auto field = [&](const char* key) -> const json& {
    auto it = entry.find(key);
    if (it == entry.end()) fail(file, fmt::format("{}: missing \"{}\"", where, key));
    return *it;
  };
  TensorInfo info;
  info.name = name;

  const json& dtype = field("dtype");
  if (!dtype.is_string()) fail(file, fmt::format("{}: \"dtype\" is not a string", where));
  const auto parsed_dtype = dtype_from_name(dtype.get_ref<const std::string&>());
  if (!parsed_dtype) fail(file, fmt::format("{}: unknown dtype {}", where, dtype.dump()));
  info.dtype = *parsed_dtype;

  const json& shape = field("shape");
  if (!shape.is_array()) fail(file, fmt::format("{}: \"shape\" is not an array", where));
  for (const json& dim : shape) {
    if (!dim.is_number_unsigned() || dim.get<uint64_t>() > uint64_t(std::numeric_limits<int64_t>::max())) {
      fail(file, fmt::format("{}: \"shape\" {} is not a list of non-negative integers", where, shape.dump()));
    }
    info.shape.push_back(dim.get<int64_t>());
  }

  const json& offsets = field("data_offsets");
  if (!offsets.is_array() || offsets.size() != 2 || !offsets[0].is_number_unsigned() ||
      !offsets[1].is_number_unsigned()) {
    fail(file, fmt::format("{}: \"data_offsets\" {} is not [begin, end]", where, offsets.dump()));
  }
  info.begin = offsets[0].get<uint64_t>();
  info.end = offsets[1].get<uint64_t>();
  if (info.end < info.begin) fail(file, fmt::format("{}: data_offsets {} end before they begin", where, offsets.dump()));

  const auto needed = byte_count(info.shape, info.dtype);
  if (!needed) fail(file, fmt::format("{}: shape {} is too large", where, shape.dump()));
  if (*needed != info.nbytes()) {
    fail(file, fmt::format("{}: shape {} of {} needs {} bytes but data_offsets {} hold {}", where, shape.dump(),
                           dtype_name(info.dtype), *needed, offsets.dump(), info.nbytes()));
  }
  if (info.end > data_size) {
    fail(file, fmt::format("{}: data_offsets {} reach past the {}-byte data buffer (truncated file?)", where,
                           offsets.dump(), data_size));
  }
  return info;
}

std::map<std::string, std::string> parse_metadata(const json& metadata, const fs::path& file) {
  std::map<std::string, std::string> out;
  if (metadata.is_null()) return out;
  if (!metadata.is_object()) fail(file, "\"__metadata__\" is not an object");
  for (const auto& [key, value] : metadata.items()) {
    if (!value.is_string()) {
      fail(file, fmt::format("\"__metadata__\" value of {} is not a string: {}", json_string(key), value.dump()));
    }
    out.emplace(key, value.get<std::string>());
  }
  return out;
}

// The data buffer must be tiled exactly: no overlap (two tensors sharing bytes) and, as in the
// reference implementation, no byte that belongs to no tensor.
void check_coverage(std::vector<TensorInfo>& tensors, uint64_t data_size, const fs::path& file) {
  std::sort(tensors.begin(), tensors.end(), [](const TensorInfo& a, const TensorInfo& b) {
    return std::tie(a.begin, a.end) < std::tie(b.begin, b.end);
  });
  uint64_t covered = 0;
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    const TensorInfo& t = tensors[i];
    if (t.begin < covered) {
      fail(file, fmt::format("tensors {} [{}, {}] and {} [{}, {}] overlap", json_string(tensors[i - 1].name),
                             tensors[i - 1].begin, tensors[i - 1].end, json_string(t.name), t.begin, t.end));
    }
    if (t.begin > covered) {
      fail(file, fmt::format("bytes [{}, {}) of the data buffer belong to no tensor", covered, t.begin));
    }
    covered = t.end;
  }
  if (covered != data_size) {
    fail(file, fmt::format("bytes [{}, {}) of the data buffer belong to no tensor", covered, data_size));
  }
}

}  // namespace

std::size_t dtype_size(DType dtype) { return entry_of(dtype).size; }

std::string_view dtype_name(DType dtype) { return entry_of(dtype).name; }

std::optional<DType> dtype_from_name(std::string_view name) {
  for (const auto& entry : kDTypes) {
    if (entry.name == name) return entry.dtype;
  }
  return std::nullopt;
}

std::optional<uint64_t> element_count(const std::vector<int64_t>& shape) {
  uint64_t count = 1;
  for (int64_t dim : shape) {
    if (dim < 0 || __builtin_mul_overflow(count, static_cast<uint64_t>(dim), &count)) return std::nullopt;
  }
  return count;
}

// ---------------------------------------------------------------------------------------------
SafetensorsFile SafetensorsFile::open(const fs::path& path) {
  const MappedFile mapped = MappedFile::open(path);
  SafetensorsFile file;
  file.path_ = path;
  file.file_size_ = mapped.size();
  if (file.file_size_ < 8) {
    fail(path, fmt::format("file has {} bytes, fewer than the 8 of the header length", file.file_size_));
  }
  file.mapping_ = mapped.mapping();
  const std::byte* base = file.mapping_.get();

  const uint64_t header_size = read_le_u64(base);
  if (header_size > kMaxHeaderBytes) {
    fail(path, fmt::format("header length {} exceeds the limit of {} bytes", header_size, kMaxHeaderBytes));
  }
  if (header_size > file.file_size_ - 8) {
    fail(path, fmt::format("header length {} reaches past the end of the {}-byte file (truncated file?)", header_size,
                           file.file_size_));
  }
  const std::string_view header(reinterpret_cast<const char*>(base + 8), header_size);
  if (header.empty() || header.front() != '{') fail(path, "header does not start with '{'");
  const json root = parse_without_duplicates(header, path, "header");
  if (!root.is_object()) fail(path, "header is not a JSON object");

  const uint64_t data_size = file.file_size_ - 8 - header_size;
  file.data_ = base + 8 + header_size;
  for (const auto& [name, entry] : root.items()) {
    if (name == kMetadataKey) {
      file.metadata_ = parse_metadata(entry, path);
    } else {
      file.tensors_.push_back(parse_tensor_entry(name, entry, data_size, path));
    }
  }
  check_coverage(file.tensors_, data_size, path);
  for (std::size_t i = 0; i < file.tensors_.size(); ++i) file.index_.emplace(file.tensors_[i].name, i);
  return file;
}

const TensorInfo* SafetensorsFile::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

TensorView SafetensorsFile::tensor(const std::string& name) const {
  const TensorInfo* info = find(name);
  if (!info) fail(path_, fmt::format("no tensor {}", json_string(name)));
  return TensorView{info->dtype, info->shape, data_ + info->begin, static_cast<std::size_t>(info->nbytes()), mapping_};
}

std::vector<std::string> SafetensorsFile::names() const {
  std::vector<std::string> out;
  out.reserve(tensors_.size());
  for (const auto& t : tensors_) out.push_back(t.name);
  std::sort(out.begin(), out.end());
  return out;
}

// ---------------------------------------------------------------------------------------------
SafetensorsWriter::SafetensorsWriter() { metadata_["format"] = "pt"; }

void SafetensorsWriter::add(const std::string& name, DType dtype, const std::vector<int64_t>& shape, const void* data,
                            std::size_t nbytes) {
  if (name == kMetadataKey) throw UsageError("tensor name \"__metadata__\" is reserved by the safetensors format");
  if (!is_valid_utf8(name)) throw UsageError(fmt::format("tensor name {:?} is not valid UTF-8", name));
  if (names_.count(name)) throw UsageError(fmt::format("tensor {} added twice", json_string(name)));
  const auto needed = byte_count(shape, dtype);
  if (!needed) throw UsageError(fmt::format("tensor {}: invalid shape [{}]", json_string(name), fmt::join(shape, ", ")));
  if (*needed != nbytes) {
    throw UsageError(fmt::format("tensor {}: shape [{}] of {} needs {} bytes, got {}", json_string(name),
                                 fmt::join(shape, ", "), dtype_name(dtype), *needed, nbytes));
  }
  if (nbytes > 0 && data == nullptr) throw UsageError(fmt::format("tensor {}: no data", json_string(name)));
  names_.insert(name);
  entries_.push_back(Entry{name, dtype, shape, static_cast<const std::byte*>(data), nbytes});
}

void SafetensorsWriter::set_metadata(const std::string& key, const std::string& value) {
  if (!is_valid_utf8(key) || !is_valid_utf8(value)) {
    throw UsageError(fmt::format("metadata {:?} = {:?} is not valid UTF-8", key, value));
  }
  metadata_[key] = value;
}

void SafetensorsWriter::clear_metadata() { metadata_.clear(); }

std::vector<const SafetensorsWriter::Entry*> SafetensorsWriter::storage_order() const {
  std::vector<const Entry*> order;
  order.reserve(entries_.size());
  for (const auto& e : entries_) order.push_back(&e);
  std::sort(order.begin(), order.end(), [](const Entry* a, const Entry* b) {
    if (a->dtype != b->dtype) return a->dtype > b->dtype;
    return a->name < b->name;  // bytewise, as the reference implementation compares names
  });
  return order;
}

uint64_t SafetensorsWriter::data_size() const {
  uint64_t total = 0;
  for (const auto& e : entries_) total += e.nbytes;
  return total;
}

std::string SafetensorsWriter::header() const {
  // ordered_json keeps insertion order, which is the order the reference writer emits: metadata
  // first, then the tensors in storage order, fields dtype, shape, data_offsets; compact JSON.
  nlohmann::ordered_json root = nlohmann::ordered_json::object();
  if (!metadata_.empty()) {
    nlohmann::ordered_json metadata = nlohmann::ordered_json::object();
    for (const auto& [key, value] : metadata_) metadata[key] = value;
    root[kMetadataKey] = std::move(metadata);
  }
  uint64_t offset = 0;
  for (const Entry* e : storage_order()) {
    nlohmann::ordered_json info = nlohmann::ordered_json::object();
    info["dtype"] = std::string(dtype_name(e->dtype));
    info["shape"] = e->shape;
    info["data_offsets"] = {offset, offset + e->nbytes};
    root[e->name] = std::move(info);
    offset += e->nbytes;
  }
  std::string text = root.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // the data buffer starts 8-aligned
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((uint64_t(text.size()) >> (8 * i)) & 0xff);
  return out + text;
}

void SafetensorsWriter::write(const fs::path& path) const {
  AtomicFileWriter out(path);
  out.write(header());
  for (const Entry* e : storage_order()) out.write(e->data, e->nbytes);
  out.commit();
}

// ---------------------------------------------------------------------------------------------
namespace {

bool is_weight_file_name(const std::string& name) {
  static const std::regex shard_name(R"(model-[0-9]{5}-of-[0-9]{5}\.safetensors)");
  return name == kSingleWeightsFile || name == kWeightsIndexFile || std::regex_match(name, shard_name);
}

// A folder must hold one layout only: a leftover model.safetensors would shadow a new index.
void remove_other_weight_files(const fs::path& folder, const std::set<std::string>& keep) {
  for (const auto& item : fs::directory_iterator(folder)) {
    const std::string name = item.path().filename().string();
    if (item.is_regular_file() && is_weight_file_name(name) && !keep.count(name)) fs::remove(item.path());
  }
}

}  // namespace

std::vector<fs::path> write_model_weights(const SafetensorsWriter& tensors, const fs::path& folder,
                                          uint64_t max_shard_bytes) {
  if (max_shard_bytes == 0) throw UsageError("the maximum shard size must be positive");
  std::vector<std::vector<const SafetensorsWriter::Entry*>> shards(1);
  uint64_t shard_bytes = 0;
  for (const auto& e : tensors.entries()) {
    if (!shards.back().empty() && shard_bytes + e.nbytes > max_shard_bytes) {
      shards.emplace_back();
      shard_bytes = 0;
    }
    shards.back().push_back(&e);
    shard_bytes += e.nbytes;
  }

  std::vector<fs::path> written;
  std::set<std::string> keep;
  if (shards.size() == 1) {
    written.push_back(folder / kSingleWeightsFile);
    tensors.write(written.back());
    keep.insert(kSingleWeightsFile);
  } else {
    json weight_map = json::object();
    for (std::size_t k = 0; k < shards.size(); ++k) {
      const std::string file_name = fmt::format("model-{:05d}-of-{:05d}.safetensors", k + 1, shards.size());
      SafetensorsWriter shard;
      shard.clear_metadata();
      for (const auto& [key, value] : tensors.metadata()) shard.set_metadata(key, value);
      for (const auto* e : shards[k]) {
        shard.add(e->name, e->dtype, e->shape, e->data, e->nbytes);
        weight_map[e->name] = file_name;
      }
      written.push_back(folder / file_name);
      shard.write(written.back());
      keep.insert(file_name);
    }
    const json index = {{"metadata", {{"total_size", tensors.data_size()}}}, {"weight_map", weight_map}};
    write_file_atomic(folder / kWeightsIndexFile, index.dump(2) + "\n");
    keep.insert(kWeightsIndexFile);
  }
  remove_other_weight_files(folder, keep);
  return written;
}

// ---------------------------------------------------------------------------------------------
SafetensorsCollection SafetensorsCollection::open_folder(const fs::path& folder) {
  if (!fs::is_directory(folder)) throw UsageError(fmt::format("model folder {} does not exist", folder.string()));
  if (fs::exists(folder / kSingleWeightsFile)) {
    SafetensorsCollection out;
    out.origin_ = folder;
    out.files_.push_back(SafetensorsFile::open(folder / kSingleWeightsFile));
    for (const auto& t : out.files_.front().tensors()) out.file_by_tensor_.emplace(t.name, 0);
    return out;
  }
  if (fs::exists(folder / kWeightsIndexFile)) return open_index(folder / kWeightsIndexFile);
  throw UsageError(fmt::format("{} holds neither {} nor {}", folder.string(), kSingleWeightsFile, kWeightsIndexFile));
}

SafetensorsCollection SafetensorsCollection::open_index(const fs::path& index_json) {
  const json root = parse_without_duplicates(read_file(index_json), index_json, "index");
  if (!root.is_object()) fail(index_json, "index is not a JSON object");
  auto map_it = root.find("weight_map");
  if (map_it == root.end() || !map_it->is_object()) fail(index_json, "no \"weight_map\" object");

  std::map<std::string, std::vector<std::string>> tensors_by_file;
  for (const auto& [tensor, file] : map_it->items()) {
    if (!file.is_string()) fail(index_json, fmt::format("weight_map entry {} is not a file name", json_string(tensor)));
    const fs::path relative(file.get<std::string>());
    const bool escapes = std::any_of(relative.begin(), relative.end(), [](const fs::path& part) { return part == ".."; });
    if (relative.empty() || relative.is_absolute() || escapes) {
      fail(index_json, fmt::format("weight_map entry {} names {}, not a file of the model folder", json_string(tensor),
                                   file.dump()));
    }
    tensors_by_file[file.get<std::string>()].push_back(tensor);
  }

  SafetensorsCollection out;
  out.origin_ = index_json;
  const fs::path folder = index_json.parent_path();
  for (const auto& [file_name, listed] : tensors_by_file) {
    const fs::path shard_path = folder / file_name;
    if (!fs::exists(shard_path)) fail(index_json, fmt::format("weight_map names {}, which does not exist", file_name));
    out.files_.push_back(SafetensorsFile::open(shard_path));
    const SafetensorsFile& shard = out.files_.back();
    const std::size_t shard_index = out.files_.size() - 1;
    for (const auto& tensor : listed) {
      if (!shard.contains(tensor)) {
        fail(index_json, fmt::format("weight_map puts {} in {}, which does not hold it", json_string(tensor), file_name));
      }
    }
    // Tensors a shard holds beyond its weight_map entries are kept (HF's loaders read every tensor
    // of each shard), as long as no other shard holds the same name.
    for (const auto& info : shard.tensors()) {
      auto [it, inserted] = out.file_by_tensor_.emplace(info.name, shard_index);
      if (!inserted) {
        fail(index_json, fmt::format("tensor {} is held by both {} and {}", json_string(info.name),
                                     out.files_[it->second].path().filename().string(), file_name));
      }
    }
  }
  return out;
}

const TensorInfo* SafetensorsCollection::find(const std::string& name) const {
  auto it = file_by_tensor_.find(name);
  return it == file_by_tensor_.end() ? nullptr : files_[it->second].find(name);
}

TensorView SafetensorsCollection::tensor(const std::string& name) const { return file_of(name).tensor(name); }

const SafetensorsFile& SafetensorsCollection::file_of(const std::string& name) const {
  auto it = file_by_tensor_.find(name);
  if (it == file_by_tensor_.end()) fail(origin_, fmt::format("no tensor {}", json_string(name)));
  return files_[it->second];
}

std::vector<std::string> SafetensorsCollection::names() const {
  std::vector<std::string> out;
  out.reserve(file_by_tensor_.size());
  for (const auto& item : file_by_tensor_) out.push_back(item.first);
  return out;
}

}  // namespace ssa::io
