// A whole file mapped read-only into memory. Copies share the mapping; it is unmapped when the
// last copy goes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>

namespace ssa::io {

class MappedFile {
 public:
  MappedFile() = default;
  // Throws UsageError when the file cannot be opened (missing, not a regular file, no
  // permission), std::system_error when mmap fails. An empty file maps to size() == 0.
  static MappedFile open(const std::filesystem::path& path);

  const std::byte* data() const { return data_.get(); }
  // The mapping's owner: views into the file that hold it keep the mapping alive.
  const std::shared_ptr<const std::byte>& mapping() const { return data_; }
  uint64_t size() const { return size_; }

 private:
  std::shared_ptr<const std::byte> data_;
  uint64_t size_ = 0;
};

}  // namespace ssa::io
