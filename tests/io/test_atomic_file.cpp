#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

#include "ssa/io/atomic_file.h"
#include "ssa/util/error.h"
#include "support/temp_dir.h"

namespace ssa::io {
namespace {
namespace fs = std::filesystem;

std::vector<std::string> entries(const fs::path& folder) {
  std::vector<std::string> names;
  for (const auto& item : fs::directory_iterator(folder)) names.push_back(item.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

TEST(AtomicFile, WritesContentAndLeavesNoTemporaryFile) {
  test::TempDir dir;
  const std::string content("binary\0content\nwith a zero", 26);
  write_file_atomic(dir / "out.bin", content);
  EXPECT_EQ(read_file(dir / "out.bin"), content);
  EXPECT_EQ(entries(dir.path()), std::vector<std::string>{"out.bin"});
}

TEST(AtomicFile, ReplacesExistingFile) {
  test::TempDir dir;
  write_file_atomic(dir / "f.txt", "a much longer old content");
  write_file_atomic(dir / "f.txt", "new");
  EXPECT_EQ(read_file(dir / "f.txt"), "new");
  EXPECT_EQ(entries(dir.path()), std::vector<std::string>{"f.txt"});
}

TEST(AtomicFile, StreamingWriterGathersSmallAndLargePieces) {
  test::TempDir dir;
  std::string expected;
  {
    AtomicFileWriter writer(dir / "stream.bin");
    // Enough small pieces to pass the internal buffer, then one piece larger than it.
    for (int i = 0; i < 200000; ++i) {
      const std::string piece = std::to_string(i) + ",";
      writer.write(piece);
      expected += piece;
    }
    const std::string large(3 << 20, 'x');
    writer.write(large);
    expected += large;
    writer.write("end");
    expected += "end";
    EXPECT_FALSE(fs::exists(dir / "stream.bin"));  // nothing visible before commit
    EXPECT_TRUE(fs::exists(writer.temp_path()));
    EXPECT_EQ(writer.temp_path().parent_path(), dir.path());
    EXPECT_EQ(writer.temp_path().filename().string().rfind("stream.bin.tmp-", 0), 0u);
    writer.commit();
    EXPECT_FALSE(fs::exists(writer.temp_path()));
  }
  EXPECT_EQ(read_file(dir / "stream.bin"), expected);
  EXPECT_EQ(entries(dir.path()), std::vector<std::string>{"stream.bin"});
}

TEST(AtomicFile, UncommittedWriterKeepsOldFileAndRemovesTemporary) {
  test::TempDir dir;
  write_file_atomic(dir / "keep.txt", "old");
  fs::path temp;
  {
    AtomicFileWriter writer(dir / "keep.txt");
    writer.write(std::string(5 << 20, 'n'));  // past the buffer: bytes reached the temporary file
    temp = writer.temp_path();
    EXPECT_TRUE(fs::exists(temp));
  }
  EXPECT_FALSE(fs::exists(temp));
  EXPECT_EQ(read_file(dir / "keep.txt"), "old");
  EXPECT_EQ(entries(dir.path()), std::vector<std::string>{"keep.txt"});
}

TEST(AtomicFile, ExceptionDuringWritingKeepsOldFile) {
  test::TempDir dir;
  write_file_atomic(dir / "model.bin", "old");
  EXPECT_THROW(
      {
        AtomicFileWriter writer(dir / "model.bin");
        writer.write("partial");
        throw std::runtime_error("producer failed");
      },
      std::runtime_error);
  EXPECT_EQ(read_file(dir / "model.bin"), "old");
  EXPECT_EQ(entries(dir.path()), std::vector<std::string>{"model.bin"});
}

TEST(AtomicFile, WriteOrCommitAfterCommitIsALogicError) {
  test::TempDir dir;
  AtomicFileWriter writer(dir / "x");
  writer.write("1");
  writer.commit();
  EXPECT_THROW(writer.write("2"), std::logic_error);
  EXPECT_THROW(writer.commit(), std::logic_error);
  EXPECT_EQ(read_file(dir / "x"), "1");
}

TEST(AtomicFile, TwoWritersOfOneFileUseDistinctTemporaries) {
  test::TempDir dir;
  AtomicFileWriter first(dir / "same");
  AtomicFileWriter second(dir / "same");
  EXPECT_NE(first.temp_path(), second.temp_path());
  first.write("first");
  second.write("second");
  first.commit();
  second.commit();
  EXPECT_EQ(read_file(dir / "same"), "second");  // the last commit wins, whole
}

TEST(AtomicFile, MissingFolderIsAUsageErrorNamingTheFile) {
  test::TempDir dir;
  try {
    write_file_atomic(dir / "no" / "such" / "file.txt", "x");
    FAIL() << "expected UsageError";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("file.txt"), std::string::npos) << e.what();
  }
}

TEST(AtomicFile, ReadFileErrorsNameTheFileAndReason) {
  test::TempDir dir;
  try {
    read_file(dir / "missing.json");
    FAIL() << "expected UsageError";
  } catch (const UsageError& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("cannot open"), std::string::npos) << message;
    EXPECT_NE(message.find("missing.json"), std::string::npos) << message;
    EXPECT_NE(message.find("No such file"), std::string::npos) << message;
  }
  EXPECT_THROW(read_file(dir.path()), UsageError);  // a folder is not a file
  write_file_atomic(dir / "empty", "");
  EXPECT_EQ(read_file(dir / "empty"), "");
}

TEST(AtomicFile, RenameAtomicReplacesTargetAndFailsLoudly) {
  test::TempDir dir;
  write_file_atomic(dir / "a", "A");
  write_file_atomic(dir / "b", "B");
  rename_atomic(dir / "a", dir / "b");
  EXPECT_FALSE(fs::exists(dir / "a"));
  EXPECT_EQ(read_file(dir / "b"), "A");

  fs::create_directories(dir / "sub");
  rename_atomic(dir / "b", dir / "sub" / "c");  // across folders
  EXPECT_EQ(read_file(dir / "sub" / "c"), "A");

  try {
    rename_atomic(dir / "absent", dir / "d");
    FAIL() << "expected system_error";
  } catch (const std::system_error& e) {
    EXPECT_EQ(e.code(), std::errc::no_such_file_or_directory);
    EXPECT_NE(std::string(e.what()).find("absent"), std::string::npos) << e.what();
  }
}

TEST(AtomicDirectory, CreatesFolderThroughStagingName) {
  test::TempDir dir;
  const fs::path target = dir / "runs" / "checkpoints" / "step-00000100";
  bool saw_staging = false;
  write_directory_atomic(target, [&](const fs::path& staging) {
    EXPECT_EQ(staging, staging_path(target));
    EXPECT_EQ(staging.filename(), "step-00000100.tmp");
    saw_staging = fs::is_directory(staging) && !fs::exists(target);
    write_file_atomic(staging / "state.json", "{}");
    fs::create_directories(staging / "model");
    write_file_atomic(staging / "model" / "config.json", "{\"a\":1}");
  });
  EXPECT_TRUE(saw_staging);
  EXPECT_EQ(read_file(target / "state.json"), "{}");
  EXPECT_EQ(read_file(target / "model" / "config.json"), "{\"a\":1}");
  EXPECT_EQ(entries(target.parent_path()), std::vector<std::string>{"step-00000100"});
}

TEST(AtomicDirectory, ReplacesExistingFolderWhole) {
  test::TempDir dir;
  const fs::path target = dir / "model";
  write_directory_atomic(target, [](const fs::path& staging) {
    write_file_atomic(staging / "old-only.txt", "old");
    write_file_atomic(staging / "config.json", "old");
  });
  write_directory_atomic(target, [](const fs::path& staging) { write_file_atomic(staging / "config.json", "new"); });
  EXPECT_EQ(entries(target), std::vector<std::string>{"config.json"});
  EXPECT_EQ(read_file(target / "config.json"), "new");
  EXPECT_EQ(entries(dir.path()), std::vector<std::string>{"model"});
}

TEST(AtomicDirectory, FailingFillLeavesOldFolderAndNoStaging) {
  test::TempDir dir;
  const fs::path target = dir / "model";
  write_directory_atomic(target, [](const fs::path& staging) { write_file_atomic(staging / "config.json", "old"); });
  EXPECT_THROW(write_directory_atomic(target,
                                      [](const fs::path& staging) {
                                        write_file_atomic(staging / "config.json", "new");
                                        throw std::runtime_error("save failed");
                                      }),
               std::runtime_error);
  EXPECT_EQ(read_file(target / "config.json"), "old");
  EXPECT_EQ(entries(dir.path()), std::vector<std::string>{"model"});
}

TEST(AtomicDirectory, RemovesStaleStagingFolderOfACrashedRun) {
  test::TempDir dir;
  const fs::path target = dir / "step-00000200";
  fs::create_directories(staging_path(target));
  write_file_atomic(staging_path(target) / "half-written", "x");
  write_directory_atomic(target, [](const fs::path& staging) {
    EXPECT_FALSE(fs::exists(staging / "half-written"));
    write_file_atomic(staging / "DONE", "");
  });
  EXPECT_EQ(entries(target), std::vector<std::string>{"DONE"});
  EXPECT_EQ(entries(dir.path()), std::vector<std::string>{"step-00000200"});
}

TEST(AtomicDirectory, RefusesToReplaceAFile) {
  test::TempDir dir;
  write_file_atomic(dir / "model", "a file");
  EXPECT_THROW(write_directory_atomic(dir / "model", [](const fs::path&) {}), UsageError);
  EXPECT_EQ(read_file(dir / "model"), "a file");
  EXPECT_EQ(entries(dir.path()), std::vector<std::string>{"model"});
}

}  // namespace
}  // namespace ssa::io
