#include "ssa/data/byte_stream.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <system_error>
#include <vector>

#include "ssa/util/error.h"

namespace ssa::data {
namespace fs = std::filesystem;

namespace {

constexpr std::size_t kReadBytes = std::size_t{1} << 20;

bool has_suffix(const fs::path& path, std::string_view suffix) {
  const std::string name = path.filename().string();
  return name.size() >= suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
}

class PlainFile {
 public:
  explicit PlainFile(const fs::path& path) : path_(path), fd_(::open(path.c_str(), O_RDONLY | O_CLOEXEC)) {
    if (fd_ < 0) throw UsageError(fmt::format("cannot open {}: {}", path.string(), std::strerror(errno)));
  }
  ~PlainFile() { ::close(fd_); }
  PlainFile(const PlainFile&) = delete;
  PlainFile& operator=(const PlainFile&) = delete;

  std::size_t read(char* out, std::size_t capacity) {
    for (;;) {
      const ssize_t got = ::read(fd_, out, capacity);
      if (got >= 0) {
        bytes_ += static_cast<uint64_t>(got);
        return static_cast<std::size_t>(got);
      }
      if (errno != EINTR) throw std::system_error(errno, std::generic_category(), "read " + path_.string());
    }
  }
  uint64_t bytes() const { return bytes_; }

 private:
  fs::path path_;
  int fd_;
  uint64_t bytes_ = 0;
};

class PlainStream final : public ByteStream {
 public:
  explicit PlainStream(const fs::path& path) : file_(path) {}
  std::size_t read(char* out, std::size_t capacity) override { return file_.read(out, capacity); }
  uint64_t file_bytes_read() const override { return file_.bytes(); }

 private:
  PlainFile file_;
};

class GzipStream final : public ByteStream {
 public:
  explicit GzipStream(const fs::path& path) : path_(path), file_(path), input_(kReadBytes) {
    if (inflateInit2(&zs_, 15 + 32) != Z_OK) throw std::runtime_error("zlib inflateInit2 failed");
  }
  ~GzipStream() override { inflateEnd(&zs_); }

  std::size_t read(char* out, std::size_t capacity) override {
    const uInt requested = static_cast<uInt>(std::min<std::size_t>(capacity, 1u << 30));
    zs_.next_out = reinterpret_cast<Bytef*>(out);
    zs_.avail_out = requested;
    while (zs_.avail_out == requested && !finished_) {
      if (zs_.avail_in == 0) {
        zs_.avail_in = static_cast<uInt>(file_.read(input_.data(), input_.size()));
        zs_.next_in = reinterpret_cast<Bytef*>(input_.data());
        if (zs_.avail_in == 0) {
          if (in_member_) throw FormatError(fmt::format("{}: gzip data ends early (truncated file?)", path_.string()));
          finished_ = true;
          break;
        }
      }
      in_member_ = true;
      const int result = inflate(&zs_, Z_NO_FLUSH);
      if (result == Z_STREAM_END) {
        in_member_ = false;  // another gzip member may follow (as `cat a.gz b.gz` makes)
        inflateReset(&zs_);
      } else if (result != Z_OK && result != Z_BUF_ERROR) {
        throw FormatError(fmt::format("{}: corrupt gzip data ({})", path_.string(), zs_.msg ? zs_.msg : "zlib error"));
      }
    }
    return requested - zs_.avail_out;
  }
  uint64_t file_bytes_read() const override { return file_.bytes(); }

 private:
  fs::path path_;
  PlainFile file_;
  std::vector<char> input_;
  z_stream zs_{};
  bool in_member_ = false;
  bool finished_ = false;
};

class ZstdStream final : public ByteStream {
 public:
  explicit ZstdStream(const fs::path& path) : path_(path), file_(path), input_(ZSTD_DStreamInSize()) {
    stream_ = ZSTD_createDStream();
    if (!stream_) throw std::runtime_error("ZSTD_createDStream failed");
  }
  ~ZstdStream() override { ZSTD_freeDStream(stream_); }

  std::size_t read(char* out, std::size_t capacity) override {
    ZSTD_outBuffer output{out, capacity, 0};
    while (output.pos == 0 && !finished_) {
      if (in_.pos == in_.size) {
        in_.size = file_.read(input_.data(), input_.size());
        in_.src = input_.data();
        in_.pos = 0;
        if (in_.size == 0) {
          if (pending_ != 0) throw FormatError(fmt::format("{}: zstd data ends early (truncated file?)", path_.string()));
          finished_ = true;
          break;
        }
      }
      pending_ = ZSTD_decompressStream(stream_, &output, &in_);
      if (ZSTD_isError(pending_)) {
        throw FormatError(fmt::format("{}: corrupt zstd data ({})", path_.string(), ZSTD_getErrorName(pending_)));
      }
    }
    return output.pos;
  }
  uint64_t file_bytes_read() const override { return file_.bytes(); }

 private:
  fs::path path_;
  PlainFile file_;
  std::vector<char> input_;
  ZSTD_inBuffer in_{nullptr, 0, 0};
  ZSTD_DStream* stream_ = nullptr;
  std::size_t pending_ = 0;  // 0 when a frame is complete
  bool finished_ = false;
};

}  // namespace

std::unique_ptr<ByteStream> open_byte_stream(const fs::path& path) {
  if (has_suffix(path, ".gz")) return std::make_unique<GzipStream>(path);
  if (has_suffix(path, ".zst")) return std::make_unique<ZstdStream>(path);
  return std::make_unique<PlainStream>(path);
}

LineReader::LineReader(std::unique_ptr<ByteStream> stream) : stream_(std::move(stream)) {}

bool LineReader::next(std::string& line) {
  for (;;) {
    const std::size_t newline = buffer_.find('\n', std::max(position_, scanned_));
    if (newline != std::string::npos) {
      line.assign(buffer_, position_, newline - position_);
      position_ = newline + 1;
      scanned_ = position_;
      return true;
    }
    scanned_ = buffer_.size();  // a long line is scanned once, not once per read
    if (at_end_) {
      if (position_ >= buffer_.size()) return false;
      line.assign(buffer_, position_, std::string::npos);
      position_ = buffer_.size();
      return true;
    }
    buffer_.erase(0, position_);
    scanned_ -= position_;
    position_ = 0;
    const std::size_t old_size = buffer_.size();
    buffer_.resize(old_size + kReadBytes);
    const std::size_t got = stream_->read(buffer_.data() + old_size, kReadBytes);
    buffer_.resize(old_size + got);
    if (got == 0) at_end_ = true;
  }
}

}  // namespace ssa::data
