// The text inputs of `ssa data tokenize`: JSON Lines files (.jsonl, .jsonl.gz, .jsonl.zst), one
// document per line, and plain text files (.txt), one document per file.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "ssa/data/byte_stream.h"

namespace ssa::data {

enum class InputKind { jsonl, text };

struct InputFile {
  std::filesystem::path path;
  InputKind kind = InputKind::jsonl;
};

// Files named directly are taken in the order given; a folder is walked recursively and its
// files with a known extension are taken sorted by path. Throws UsageError for a missing path or
// a named file with an unknown extension, or when nothing is found.
std::vector<InputFile> list_input_files(const std::vector<std::filesystem::path>& inputs);

// One document as read, before JSON parsing (which the tokenizing threads do).
struct RawDocument {
  std::string payload;   // a JSON line, or a whole text file
  std::size_t file = 0;  // index into the file list
  uint64_t line = 0;     // 1-based line of a JSON line; 0 for a text file
};

// Reads the files one after the other, documents in file order. Blank JSON lines are skipped.
class InputDocumentReader {
 public:
  explicit InputDocumentReader(std::vector<InputFile> files);
  bool next(RawDocument& document);
  // File bytes consumed so far (compressed bytes for compressed files).
  uint64_t bytes_read() const;
  const std::vector<InputFile>& files() const { return files_; }

 private:
  std::vector<InputFile> files_;
  std::size_t current_ = 0;
  std::unique_ptr<LineReader> lines_;
  uint64_t line_number_ = 0;
  uint64_t finished_bytes_ = 0;
};

// The text of a document: the whole payload of a text file, or the string field `text_field` of
// a JSON line. For a malformed line or a missing or non-string field it returns nullopt and sets
// `error` to a one-line message "FILE:LINE: ...".
std::optional<std::string> document_text(const RawDocument& document, const std::vector<InputFile>& files,
                                         const std::string& text_field, std::string& error);

}  // namespace ssa::data
