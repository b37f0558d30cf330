#include "ssa/data/input_documents.h"

#include <fmt/format.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "ssa/util/error.h"

namespace ssa::data {
namespace fs = std::filesystem;

namespace {

std::optional<InputKind> kind_of(const fs::path& path) {
  const std::string name = path.filename().string();
  const auto ends_with = [&](std::string_view suffix) {
    return name.size() > suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
  };
  if (ends_with(".jsonl") || ends_with(".jsonl.gz") || ends_with(".jsonl.zst")) return InputKind::jsonl;
  if (ends_with(".txt")) return InputKind::text;
  return std::nullopt;
}

bool is_blank(const std::string& line) {
  return std::all_of(line.begin(), line.end(), [](char c) { return c == ' ' || c == '\t' || c == '\r'; });
}

}  // namespace

std::vector<InputFile> list_input_files(const std::vector<fs::path>& inputs) {
  std::vector<InputFile> files;
  for (const auto& input : inputs) {
    std::error_code error;
    const auto status = fs::status(input, error);
    if (error || !fs::exists(status)) throw UsageError(fmt::format("input {} does not exist", input.string()));
    if (fs::is_directory(status)) {
      std::vector<InputFile> found;
      for (const auto& entry : fs::recursive_directory_iterator(input, fs::directory_options::follow_directory_symlink)) {
        if (!entry.is_regular_file()) continue;
        if (const auto kind = kind_of(entry.path())) found.push_back(InputFile{entry.path(), *kind});
      }
      std::sort(found.begin(), found.end(), [](const InputFile& a, const InputFile& b) { return a.path < b.path; });
      files.insert(files.end(), found.begin(), found.end());
    } else if (const auto kind = kind_of(input)) {
      files.push_back(InputFile{input, *kind});
    } else {
      throw UsageError(fmt::format("input {}: unknown extension (expected .jsonl, .jsonl.gz, .jsonl.zst or .txt)",
                                   input.string()));
    }
  }
  if (files.empty()) throw UsageError("no input files (.jsonl, .jsonl.gz, .jsonl.zst, .txt) found");
  return files;
}

InputDocumentReader::InputDocumentReader(std::vector<InputFile> files) : files_(std::move(files)) {}

bool InputDocumentReader::next(RawDocument& document) {
  while (current_ < files_.size()) {
    const InputFile& file = files_[current_];
    if (file.kind == InputKind::text) {
      auto stream = open_byte_stream(file.path);
      document.payload.clear();
      char buffer[1 << 16];
      for (std::size_t got; (got = stream->read(buffer, sizeof buffer)) > 0;) document.payload.append(buffer, got);
      document.file = current_;
      document.line = 0;
      finished_bytes_ += stream->file_bytes_read();
      ++current_;
      return true;
    }
    if (!lines_) {
      lines_ = std::make_unique<LineReader>(open_byte_stream(file.path));
      line_number_ = 0;
    }
    while (lines_->next(document.payload)) {
      ++line_number_;
      if (is_blank(document.payload)) continue;
      document.file = current_;
      document.line = line_number_;
      return true;
    }
    finished_bytes_ += lines_->file_bytes_read();
    lines_.reset();
    ++current_;
  }
  return false;
}

uint64_t InputDocumentReader::bytes_read() const { return finished_bytes_ + (lines_ ? lines_->file_bytes_read() : 0); }

std::optional<std::string> document_text(const RawDocument& document, const std::vector<InputFile>& files,
                                         const std::string& text_field, std::string& error) {
  if (files[document.file].kind == InputKind::text) return document.payload;
  const std::string where = fmt::format("{}:{}", files[document.file].path.string(), document.line);
  nlohmann::json value = nlohmann::json::parse(document.payload, nullptr, false);
  if (value.is_discarded()) {
    error = fmt::format("{}: not valid JSON", where);
    return std::nullopt;
  }
  if (!value.is_object()) {
    error = fmt::format("{}: not a JSON object", where);
    return std::nullopt;
  }
  const auto field = value.find(text_field);
  if (field == value.end()) {
    error = fmt::format("{}: no \"{}\" field", where, text_field);
    return std::nullopt;
  }
  if (!field->is_string()) {
    error = fmt::format("{}: field \"{}\" is a {}, not a string", where, text_field, field->type_name());
    return std::nullopt;
  }
  return std::move(field->get_ref<std::string&>());
}

}  // namespace ssa::data
