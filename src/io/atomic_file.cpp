#include "ssa/io/atomic_file.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <random>
#include <stdexcept>
#include <system_error>

#include "ssa/io/remove_tree.h"
#include "ssa/util/error.h"

namespace ssa::io {
namespace fs = std::filesystem;

namespace {

// Big enough that per-call overhead vanishes for small writes, small enough to be irrelevant next
// to the tensors that bypass it.
constexpr std::size_t kBufferBytes = std::size_t{1} << 20;

[[noreturn]] void throw_errno(int error, const std::string& what) {
  throw std::system_error(error, std::generic_category(), what);
}

fs::path folder_of(const fs::path& path) {
  fs::path parent = path.parent_path();
  return parent.empty() ? fs::path(".") : parent;
}

std::string temp_name_for(const fs::path& path) {
  std::random_device device;
  const uint64_t random = (uint64_t{device()} << 32) | device();
  return fmt::format("{}.tmp-{}-{:016x}", path.filename().string(), ::getpid(), random);
}

void close_or_throw(int fd, const fs::path& path) {
  // Linux releases the descriptor even when close() reports an error, so it is never retried.
  if (::close(fd) != 0) throw_errno(errno, fmt::format("close {}", path.string()));
}

}  // namespace

AtomicFileWriter::AtomicFileWriter(fs::path path) : path_(std::move(path)) {
  if (path_.filename().empty()) throw UsageError(fmt::format("cannot create {}: not a file name", path_.string()));
  // O_EXCL: two writers of the same destination never share a temporary file.
  for (int attempt = 0; fd_ < 0; ++attempt) {
    temp_path_ = path_.parent_path() / temp_name_for(path_);
    fd_ = ::open(temp_path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd_ < 0 && (errno != EEXIST || attempt == 8)) {
      throw UsageError(fmt::format("cannot create {}: {}", path_.string(), std::strerror(errno)));
    }
  }
}

AtomicFileWriter::~AtomicFileWriter() {
  if (committed_) return;
  ::close(fd_);
  ::unlink(temp_path_.c_str());
}

void AtomicFileWriter::write(const void* data, std::size_t size) {
  if (committed_) throw std::logic_error("AtomicFileWriter::write after commit: " + path_.string());
  const char* bytes = static_cast<const char*>(data);
  if (buffer_.size() + size <= kBufferBytes) {
    if (buffer_.capacity() == 0) buffer_.reserve(kBufferBytes);
    buffer_.insert(buffer_.end(), bytes, bytes + size);
    return;
  }
  flush_buffer();
  write_to_file(bytes, size);
}

void AtomicFileWriter::flush_buffer() {
  write_to_file(buffer_.data(), buffer_.size());
  buffer_.clear();
}

void AtomicFileWriter::write_to_file(const char* data, std::size_t size) {
  while (size > 0) {
    const ssize_t written = ::write(fd_, data, size);
    if (written < 0) {
      if (errno == EINTR) continue;
      throw_errno(errno, fmt::format("write {}", temp_path_.string()));
    }
    data += written;
    size -= static_cast<std::size_t>(written);
  }
}

void AtomicFileWriter::commit() {
  if (committed_) throw std::logic_error("AtomicFileWriter::commit called twice: " + path_.string());
  flush_buffer();
  if (::fsync(fd_) != 0) throw_errno(errno, fmt::format("fsync {}", temp_path_.string()));
  const int fd = fd_;
  fd_ = -1;
  try {
    close_or_throw(fd, temp_path_);
    rename_atomic(temp_path_, path_);
  } catch (...) {
    ::unlink(temp_path_.c_str());
    committed_ = true;  // nothing left for the destructor to clean up
    throw;
  }
  committed_ = true;
}

void write_file_atomic(const fs::path& path, std::string_view bytes) {
  AtomicFileWriter writer(path);
  writer.write(bytes);
  writer.commit();
}

void fsync_directory(const fs::path& folder) {
  const int fd = ::open(folder.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) throw_errno(errno, fmt::format("open folder {}", folder.string()));
  if (::fsync(fd) != 0) {
    const int error = errno;
    ::close(fd);
    throw_errno(error, fmt::format("fsync folder {}", folder.string()));
  }
  close_or_throw(fd, folder);
}

void rename_atomic(const fs::path& from, const fs::path& to) {
  if (std::rename(from.c_str(), to.c_str()) != 0) {
    throw_errno(errno, fmt::format("rename {} -> {}", from.string(), to.string()));
  }
  const fs::path to_folder = folder_of(to);
  fsync_directory(to_folder);
  const fs::path from_folder = folder_of(from);
  if (from_folder != to_folder) fsync_directory(from_folder);
}

fs::path staging_path(const fs::path& folder) {
  fs::path staging = folder;
  staging += ".tmp";
  return staging;
}

void write_directory_atomic(const fs::path& folder, const std::function<void(const fs::path& staging)>& fill) {
  const fs::path target = folder.filename().empty() ? folder.parent_path() : folder;  // "out/" -> "out"
  const fs::path staging = staging_path(target);
  const fs::path parent = folder_of(target);
  std::error_code error;
  remove_tree(staging, error);
  if (error) throw_errno(error.value(), fmt::format("remove stale {}", staging.string()));
  fs::create_directories(staging, error);
  if (error) throw UsageError(fmt::format("cannot create {}: {}", staging.string(), error.message()));
  try {
    fill(staging);
    fsync_directory(staging);
  } catch (...) {
    remove_tree(staging, error);
    throw;
  }

  const bool replacing = fs::exists(fs::symlink_status(target));
  if (replacing && !fs::is_directory(fs::symlink_status(target))) {
    remove_tree(staging, error);
    throw UsageError(fmt::format("cannot replace {}: it exists and is not a folder", target.string()));
  }
  if (!replacing) {
    rename_atomic(staging, target);
    return;
  }
  // rename(2) cannot replace a non-empty folder; RENAME_EXCHANGE swaps both names in one step.
  if (::renameat2(AT_FDCWD, staging.c_str(), AT_FDCWD, target.c_str(), RENAME_EXCHANGE) == 0) {
    fsync_directory(parent);
    remove_tree(staging, error);  // now the old content
    if (error) throw_errno(error.value(), fmt::format("remove old {}", staging.string()));
    return;
  }
  if (errno != EINVAL && errno != ENOSYS) {
    throw_errno(errno, fmt::format("exchange {} <-> {}", staging.string(), target.string()));
  }
  // Filesystems without RENAME_EXCHANGE: two renames, so a crash between them leaves the new
  // content at the staging name and the old one at `<folder>.old`.
  fs::path old = target;
  old += ".old";
  remove_tree(old, error);
  rename_atomic(target, old);
  rename_atomic(staging, target);
  remove_tree(old, error);
  if (error) throw_errno(error.value(), fmt::format("remove old {}", old.string()));
}

std::string read_file(const fs::path& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw UsageError(fmt::format("cannot open {}: {}", path.string(), std::strerror(errno)));
  struct stat info {};
  if (::fstat(fd, &info) != 0 || !S_ISREG(info.st_mode)) {
    ::close(fd);
    throw UsageError(fmt::format("cannot open {}: not a regular file", path.string()));
  }
  // One spare byte: the read that returns EOF then needs no reallocation. Reading until EOF
  // rather than trusting st_size keeps files that change meanwhile whole.
  std::string content(static_cast<std::size_t>(info.st_size) + 1, '\0');
  std::size_t filled = 0;
  for (;;) {
    if (filled == content.size()) content.resize(content.size() + 4096 + content.size() / 2);
    const ssize_t n = ::read(fd, content.data() + filled, content.size() - filled);
    if (n < 0) {
      if (errno == EINTR) continue;
      const int error = errno;
      ::close(fd);
      throw_errno(error, fmt::format("read {}", path.string()));
    }
    if (n == 0) break;
    filled += static_cast<std::size_t>(n);
  }
  ::close(fd);
  content.resize(filled);
  return content;
}

}  // namespace ssa::io
