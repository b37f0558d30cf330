#include "ssa/io/mapped_file.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <system_error>

#include "ssa/util/error.h"

namespace ssa::io {

MappedFile MappedFile::open(const std::filesystem::path& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw UsageError(fmt::format("cannot open {}: {}", path.string(), std::strerror(errno)));
  struct stat status {};
  if (::fstat(fd, &status) != 0 || !S_ISREG(status.st_mode)) {
    ::close(fd);
    throw UsageError(fmt::format("cannot open {}: not a regular file", path.string()));
  }
  MappedFile file;
  file.size_ = static_cast<uint64_t>(status.st_size);
  if (file.size_ == 0) {
    ::close(fd);
    return file;
  }
  void* address = ::mmap(nullptr, file.size_, PROT_READ, MAP_SHARED, fd, 0);
  const int map_error = errno;
  ::close(fd);  // the mapping keeps the file open
  if (address == MAP_FAILED) throw std::system_error(map_error, std::generic_category(), "mmap " + path.string());
  const std::size_t mapped_size = file.size_;
  file.data_ = std::shared_ptr<const std::byte>(static_cast<const std::byte*>(address), [mapped_size](const std::byte* p) {
    ::munmap(const_cast<std::byte*>(p), mapped_size);
  });
  return file;
}

}  // namespace ssa::io
