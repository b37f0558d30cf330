// Sequential reading of a file that may be compressed: .gz through zlib (gzip, concatenated
// members too), .zst through libzstd's streaming decoder (concatenated frames too), anything
// else as it is.
#pragma once

#include <cstddef>
#include <filesystem>
#include <memory>
#include <cstdint>
#include <string>

namespace ssa::data {

class ByteStream {
 public:
  virtual ~ByteStream() = default;
  // Up to `capacity` bytes into `out`; 0 at the end. Throws FormatError naming the file for
  // corrupt or truncated compressed data, std::system_error for read failures.
  virtual std::size_t read(char* out, std::size_t capacity) = 0;
  // Bytes consumed from the file so far (compressed bytes for compressed files).
  virtual uint64_t file_bytes_read() const = 0;
};

// Throws UsageError when the file cannot be opened.
std::unique_ptr<ByteStream> open_byte_stream(const std::filesystem::path& path);

// Splits a ByteStream into lines ('\n' removed, a trailing '\r' kept as part of the line).
class LineReader {
 public:
  explicit LineReader(std::unique_ptr<ByteStream> stream);
  // False at the end; the last line needs no final newline.
  bool next(std::string& line);
  uint64_t file_bytes_read() const { return stream_->file_bytes_read(); }

 private:
  std::unique_ptr<ByteStream> stream_;
  std::string buffer_;
  std::size_t position_ = 0;
  std::size_t scanned_ = 0;  // buffer_ holds no '\n' in [position_, scanned_)
  bool at_end_ = false;
};

}  // namespace ssa::data
