// The safetensors format (what HF model folders hold), read and written without LibTorch:
//   8 bytes: N, little-endian u64
//   N bytes: UTF-8 JSON object, right-padded with spaces:
//            {"__metadata__": {string: string}?, name: {"dtype", "shape", "data_offsets": [begin, end]}...}
//   the data buffer: every tensor in C order, little endian, at [begin, end) of the buffer.
// Reading memory-maps the file, so multi-GB checkpoints are not copied; the reader accepts what
// the reference implementation accepts, plus it rejects duplicate JSON keys (which that parser
// resolves silently). Every problem with a file throws FormatError naming the file.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace ssa::io {

// Element types, in the reference implementation's order: the writer sorts tensors by this order
// descending (then by name), so larger elements come first and every tensor is aligned to its
// element size within the 8-aligned data buffer.
enum class DType : uint8_t { kBool, kU8, kI8, kF8E5M2, kF8E4M3, kI16, kU16, kF16, kBF16, kI32, kU32, kF32, kF64, kI64, kU64 };

std::size_t dtype_size(DType dtype);          // bytes per element
std::string_view dtype_name(DType dtype);     // as in the file: "BF16", "F8_E4M3", ...
std::optional<DType> dtype_from_name(std::string_view name);

// Number of elements of `shape`, or nullopt for a negative dimension or an overflow.
std::optional<uint64_t> element_count(const std::vector<int64_t>& shape);

struct TensorInfo {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  uint64_t begin = 0;  // offsets into the data buffer, end exclusive
  uint64_t end = 0;

  uint64_t nbytes() const { return end - begin; }
};

// A tensor's bytes inside a mapped file. The view shares ownership of the mapping, so `data` stays
// valid as long as the view, even after the SafetensorsFile is gone. `data` has the alignment the
// file gives it: element-aligned for files this writer or HF's wrote, byte-aligned in general
// (copy with memcpy when unsure).
struct TensorView {
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  const std::byte* data = nullptr;
  std::size_t nbytes = 0;
  std::shared_ptr<const std::byte> mapping;  // keeps `data` mapped
};

class SafetensorsFile {
 public:
  // Maps and validates the whole header. UsageError if the file cannot be opened, FormatError
  // if it is not a valid safetensors file. Copies and views share the mapping.
  static SafetensorsFile open(const std::filesystem::path& path);

  const std::filesystem::path& path() const { return path_; }
  const TensorInfo* find(const std::string& name) const;  // nullptr when absent
  bool contains(const std::string& name) const { return find(name) != nullptr; }
  TensorView tensor(const std::string& name) const;        // FormatError when absent
  std::vector<std::string> names() const;                  // sorted by name
  const std::vector<TensorInfo>& tensors() const { return tensors_; }  // in file (offset) order
  const std::map<std::string, std::string>& metadata() const { return metadata_; }  // "__metadata__"
  uint64_t file_size() const { return file_size_; }

 private:
  SafetensorsFile() = default;

  std::filesystem::path path_;
  std::shared_ptr<const std::byte> mapping_;
  uint64_t file_size_ = 0;
  const std::byte* data_ = nullptr;  // start of the data buffer inside the mapping
  std::vector<TensorInfo> tensors_;
  std::unordered_map<std::string, std::size_t> index_;
  std::map<std::string, std::string> metadata_;
};

// Collects tensors and writes one file. add() only references the caller's bytes, which must stay
// alive and unchanged until write() returns: a multi-GB model is written without a second copy.
// Tensors are stored like HF's writer stores them (dtype order descending, then name), so the
// same tensors and metadata give a file byte-identical to the Python library's (metadata keys are
// written sorted; Python writes several in hash order, which readers do not depend on).
class SafetensorsWriter {
 public:
  // Starts with the metadata HF writes for PyTorch weights: {"format": "pt"}.
  SafetensorsWriter();

  // UsageError on a duplicate or reserved name, a negative dimension or nbytes that do not match
  // shape and dtype.
  void add(const std::string& name, DType dtype, const std::vector<int64_t>& shape, const void* data,
           std::size_t nbytes);
  void set_metadata(const std::string& key, const std::string& value);
  void clear_metadata();  // a file without "__metadata__"
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

  // The 8-byte length and the padded JSON header that write() puts before the data.
  std::string header() const;
  uint64_t data_size() const;  // bytes of the data buffer

  // Writes atomically (temporary name, fsync, rename).
  void write(const std::filesystem::path& path) const;

  struct Entry {
    std::string name;
    DType dtype;
    std::vector<int64_t> shape;
    const std::byte* data;
    std::size_t nbytes;
  };
  const std::vector<Entry>& entries() const { return entries_; }  // in insertion order

 private:
  std::vector<const Entry*> storage_order() const;

  std::vector<Entry> entries_;
  std::unordered_set<std::string> names_;
  std::map<std::string, std::string> metadata_;
};

inline constexpr const char* kSingleWeightsFile = "model.safetensors";
inline constexpr const char* kWeightsIndexFile = "model.safetensors.index.json";
// transformers' save_pretrained default max_shard_size ("5GB").
inline constexpr uint64_t kHfMaxShardBytes = 5'000'000'000;

// Writes the weights of a model folder as HF does: `model.safetensors` when the data fits in
// `max_shard_bytes`, else `model-0000k-of-0000n.safetensors` (tensors in insertion order, a new
// shard whenever the next tensor would overflow the current one; a larger tensor gets a shard of
// its own) plus `model.safetensors.index.json` {"metadata": {"total_size"}, "weight_map"}. Each
// file is atomic; files of the other layout or stale shards in `folder` are removed afterwards.
// For a whole-folder guarantee write into write_directory_atomic's staging folder.
// Returns the weight files written.
std::vector<std::filesystem::path> write_model_weights(const SafetensorsWriter& tensors,
                                                       const std::filesystem::path& folder,
                                                       uint64_t max_shard_bytes = kHfMaxShardBytes);

// The tensors of a model folder across its files: `model.safetensors` if present, else the shards
// named by `model.safetensors.index.json`. Every weight_map entry must be held by the shard it
// names and no name may be held by two shards; a tensor that a named shard holds but the
// weight_map omits is kept, as HF's loaders read every tensor of each shard.
class SafetensorsCollection {
 public:
  static SafetensorsCollection open_folder(const std::filesystem::path& folder);
  static SafetensorsCollection open_index(const std::filesystem::path& index_json);

  const TensorInfo* find(const std::string& name) const;  // nullptr when absent
  TensorView tensor(const std::string& name) const;        // FormatError when absent
  const SafetensorsFile& file_of(const std::string& name) const;
  std::vector<std::string> names() const;  // sorted by name
  const std::vector<SafetensorsFile>& files() const { return files_; }

 private:
  std::filesystem::path origin_;  // the folder or index, for messages
  std::vector<SafetensorsFile> files_;
  std::map<std::string, std::size_t> file_by_tensor_;
};

}  // namespace ssa::io
