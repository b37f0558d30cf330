// Recursive removal of a file or folder (what std::filesystem::remove_all does).
//
// Hand-written on POSIX nftw() on purpose: the LibTorch 2.x wheels export their own copy of
// std::filesystem::remove_all (and resize_file, permissions, equivalent) from libtorch.so, built
// against another libstdc++; in a program linking them, the call on a non-empty folder resolves
// to that copy and crashes (seen with torch 2.11: segmentation fault). Never call those four
// std::filesystem functions in this project.
#pragma once

#include <filesystem>
#include <system_error>

namespace ssa::io {

// Removes `path` and everything below it; a missing path is not an error. Symbolic links are
// removed, not followed. On failure `error` holds the first error and removal stops.
void remove_tree(const std::filesystem::path& path, std::error_code& error);

// The same, throwing std::system_error naming the path.
void remove_tree(const std::filesystem::path& path);

}  // namespace ssa::io
