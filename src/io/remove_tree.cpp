#include "ssa/io/remove_tree.h"

#include <ftw.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstdio>

namespace ssa::io {
namespace {

int remove_entry(const char* path, const struct stat*, int, struct FTW*) { return std::remove(path) == 0 ? 0 : errno; }

}  // namespace

void remove_tree(const std::filesystem::path& path, std::error_code& error) {
  error.clear();
  struct stat info {};
  if (::lstat(path.c_str(), &info) != 0) {
    if (errno != ENOENT) error.assign(errno, std::generic_category());
    return;
  }
  // Children first (FTW_DEPTH), links not followed (FTW_PHYS).
  const int result = ::nftw(path.c_str(), remove_entry, 32, FTW_DEPTH | FTW_PHYS);
  if (result > 0) error.assign(result, std::generic_category());
  if (result < 0) error.assign(errno, std::generic_category());
}

void remove_tree(const std::filesystem::path& path) {
  std::error_code error;
  remove_tree(path, error);
  if (error) throw std::system_error(error, "cannot remove " + path.string());
}

}  // namespace ssa::io
