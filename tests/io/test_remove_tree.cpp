#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "ssa/io/remove_tree.h"
#include "support/temp_dir.h"

namespace ssa::io {
namespace {

namespace fs = std::filesystem;

TEST(RemoveTree, RemovesNestedFoldersAndFiles) {
  test::TempDir dir;
  const auto root = dir / "tree";
  fs::create_directories(root / "a" / "b" / "c");
  std::ofstream(root / "top.txt") << "1";
  std::ofstream(root / "a" / "b" / "c" / "deep.txt") << "2";
  std::error_code error;
  remove_tree(root, error);
  EXPECT_FALSE(error) << error.message();
  EXPECT_FALSE(fs::exists(root));
  EXPECT_TRUE(fs::exists(dir.path()));
}

TEST(RemoveTree, MissingPathIsNotAnErrorAndFilesAreRemoved) {
  test::TempDir dir;
  std::error_code error;
  remove_tree(dir / "absent", error);
  EXPECT_FALSE(error);
  const auto file = dir / "file.txt";
  std::ofstream(file) << "x";
  remove_tree(file);
  EXPECT_FALSE(fs::exists(file));
}

TEST(RemoveTree, LinksAreRemovedNotFollowed) {
  test::TempDir dir;
  const auto outside = dir / "outside";
  fs::create_directories(outside);
  std::ofstream(outside / "keep.txt") << "keep";
  const auto root = dir / "tree";
  fs::create_directories(root);
  fs::create_directory_symlink(outside, root / "link");
  remove_tree(root);
  EXPECT_FALSE(fs::exists(root));
  EXPECT_TRUE(fs::exists(outside / "keep.txt"));
}

}  // namespace
}  // namespace ssa::io
