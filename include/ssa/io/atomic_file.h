// Crash-safe file and folder writes: content goes to a temporary name in the destination's folder,
// is flushed to disk, and is renamed over the destination, so a reader (or a run resumed after a
// crash or power loss) sees either the old content or the complete new content, never a torn file.
//
// Errors: a destination that cannot be created (missing folder, no permission) is the user's
// choice of path and throws UsageError; failures while writing, syncing or renaming (disk full,
// I/O error) throw std::system_error, whose message names the file and the system's reason.
#pragma once

#include <cstddef>
#include <filesystem>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace ssa::io {

// Streams bytes into `path.tmp-<pid>-<random>` next to `path`; commit() makes them `path`.
// Destroying the writer without commit() removes the temporary file and leaves `path` untouched.
class AtomicFileWriter {
 public:
  explicit AtomicFileWriter(std::filesystem::path path);
  ~AtomicFileWriter();
  AtomicFileWriter(const AtomicFileWriter&) = delete;
  AtomicFileWriter& operator=(const AtomicFileWriter&) = delete;

  // Small pieces are gathered in a buffer; large ones go straight to the file.
  void write(const void* data, std::size_t size);
  void write(std::string_view bytes) { write(bytes.data(), bytes.size()); }

  // Flushes, fsyncs the file, renames it to path() and fsyncs the folder. Call at most once.
  void commit();

  const std::filesystem::path& path() const { return path_; }
  const std::filesystem::path& temp_path() const { return temp_path_; }

 private:
  void flush_buffer();
  void write_to_file(const char* data, std::size_t size);

  std::filesystem::path path_;
  std::filesystem::path temp_path_;
  int fd_ = -1;
  bool committed_ = false;
  std::vector<char> buffer_;
};

// Replaces `path` with `bytes` atomically (AtomicFileWriter in one call).
void write_file_atomic(const std::filesystem::path& path, std::string_view bytes);

// rename(2) (replaces an existing file at `to`), then fsyncs the folders of both names so the
// rename itself survives a crash.
void rename_atomic(const std::filesystem::path& from, const std::filesystem::path& to);

// Makes the entries of a folder (files created, renamed or removed in it) durable.
void fsync_directory(const std::filesystem::path& folder);

// Builds a folder under the staging name `<folder>.tmp` (removed first if a crashed run left
// one), lets `fill` write into it, then puts it in place of `folder` in one rename; an existing
// `folder` is swapped out atomically (renameat2 RENAME_EXCHANGE) and deleted with all its
// content, so never point this at a folder that holds anything but what `fill` recreates.
// Parent folders are created. If `fill` throws, the staging folder is removed and `folder` is
// untouched. One writer per folder at a time (the staging name is fixed, so a resumed run can
// recognise and ignore `*.tmp` leftovers, e.g. `checkpoints/step-00001000.tmp`).
void write_directory_atomic(const std::filesystem::path& folder,
                            const std::function<void(const std::filesystem::path& staging)>& fill);

// The staging name write_directory_atomic uses for `folder`.
std::filesystem::path staging_path(const std::filesystem::path& folder);

// The whole content of a regular file. Throws UsageError "cannot open FILE: reason" when it is
// missing, unreadable or not a regular file.
std::string read_file(const std::filesystem::path& path);

}  // namespace ssa::io
