#include "ssa/data/tokenizer.h"

#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "ssa/data/added_tokens.h"
#include "ssa/data/bpe.h"
#include "ssa/data/byte_level.h"
#include "ssa/data/pretokenizer.h"
#include "ssa/data/utf8.h"
#include "ssa/util/error.h"

namespace ssa::data {

using nlohmann::json;

struct Tokenizer::Impl {
  std::string name;
  PreTokenizer pre_tokenizer;
  BpeModel model;
  AddedVocabulary added;
  std::vector<const std::string*> text_by_id;  // bytes each id decodes to; null for unused ids
  std::optional<uint32_t> eos, bos;

  Impl(std::string name_, PreTokenizer pre_tokenizer_, BpeModel model_, AddedVocabulary added_)
      : name(std::move(name_)),
        pre_tokenizer(std::move(pre_tokenizer_)),
        model(std::move(model_)),
        added(std::move(added_)) {}

  std::optional<uint32_t> token_to_id(std::string_view token) const {
    if (const AddedToken* added_token = added.find(token)) return added_token->id;
    const auto bytes = byte_level_decode(token);
    return bytes ? model.id_of(*bytes) : std::nullopt;
  }
};

namespace {

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw UsageError(fmt::format("cannot open tokenizer file '{}'", path));
  std::ostringstream content;
  content << in.rdbuf();
  if (in.bad()) throw UsageError(fmt::format("cannot read tokenizer file '{}'", path));
  return content.str();
}

std::string name_from_path(const std::string& path) {
  const std::filesystem::path file(path);
  if (file.filename() == "tokenizer.json") {
    const auto folder = std::filesystem::absolute(file).parent_path().filename().string();
    if (!folder.empty()) return folder;
  }
  return file.stem().string();
}

const json& member(const json& object, const char* key, const std::string& where) {
  if (!object.is_object() || !object.contains(key)) {
    throw FormatError(fmt::format("{} has no \"{}\"", where, key));
  }
  return object[key];
}

bool is_set(const json& object, const char* key) { return object.contains(key) && !object[key].is_null(); }

std::string byte_level_bytes(const std::string& token, const std::string& where) {
  auto bytes = byte_level_decode(token);
  if (!bytes) {
    throw FormatError(fmt::format("{}: '{}' is not spelled in the byte-level alphabet", where, token));
  }
  return std::move(*bytes);
}

uint32_t token_id(const json& value, const std::string& where) {
  if (!value.is_number_integer() || value.get<int64_t>() < 0 || value.get<int64_t>() >= (int64_t{1} << 31)) {
    throw FormatError(fmt::format("{}: id {} is not an integer in [0, 2^31)", where, value.dump()));
  }
  return value.get<uint32_t>();
}

void check_supported(const json& root) {
  if (is_set(root, "normalizer")) {
    throw UsageError(fmt::format("normalizer '{}' is not supported (byte-level BPE without normalizer only)",
                                 root["normalizer"].value("type", "?")));
  }
  if (!is_set(root, "pre_tokenizer")) throw UsageError("has no pre_tokenizer: not a byte-level BPE tokenizer");
  const json& decoder = member(root, "decoder", "tokenizer.json");
  if (!decoder.is_object() || decoder.value("type", "") != "ByteLevel") {
    throw UsageError(fmt::format("decoder '{}' is not supported (ByteLevel only)",
                                 decoder.is_object() ? decoder.value("type", "?") : decoder.dump()));
  }
  const json& model = member(root, "model", "tokenizer.json");
  if (model.value("type", "") != "BPE") {
    throw UsageError(fmt::format("model type '{}' is not supported (BPE only)", model.value("type", "?")));
  }
  if (model.value("byte_fallback", false)) throw UsageError("model.byte_fallback is not supported");
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    if (is_set(model, key) && model[key] != "") throw UsageError(fmt::format("model.{} is not supported", key));
  }
  if (is_set(model, "dropout") && model["dropout"].get<double>() != 0.0) {
    throw UsageError("model.dropout is not supported");
  }
}

std::vector<BpeModel::Merge> read_merges(const json& merges) {
  if (!merges.is_array()) throw FormatError("model.merges is not an array");
  std::vector<BpeModel::Merge> out;
  out.reserve(merges.size());
  for (size_t k = 0; k < merges.size(); ++k) {
    const std::string where = fmt::format("model.merges[{}]", k);
    const json& merge = merges[k];
    std::string left, right;
    if (merge.is_string()) {
      // The older format "left right": tokens never hold a plain space in the byte-level alphabet.
      const std::string& text = merge.get_ref<const std::string&>();
      const size_t space = text.find(' ');
      if (space == std::string::npos || text.find(' ', space + 1) != std::string::npos) {
        throw FormatError(fmt::format("{}: '{}' is not two tokens separated by one space", where, text));
      }
      left = text.substr(0, space);
      right = text.substr(space + 1);
    } else if (merge.is_array() && merge.size() == 2 && merge[0].is_string() && merge[1].is_string()) {
      left = merge[0].get<std::string>();
      right = merge[1].get<std::string>();
    } else {
      throw FormatError(fmt::format("{} is neither \"left right\" nor [left, right]", where));
    }
    out.push_back({byte_level_bytes(left, where), byte_level_bytes(right, where)});
  }
  return out;
}

BpeModel read_model(const json& model) {
  const json& vocab = member(model, "vocab", "model");
  if (!vocab.is_object()) throw FormatError("model.vocab is not an object");
  std::vector<BpeModel::Token> tokens;
  tokens.reserve(vocab.size());
  std::optional<uint32_t> unk_id;
  const std::string unk_token = is_set(model, "unk_token") ? model["unk_token"].get<std::string>() : "";
  for (const auto& [token, id] : vocab.items()) {
    const uint32_t value = token_id(id, "model.vocab");
    if (!unk_token.empty() && token == unk_token) unk_id = value;
    tokens.push_back({byte_level_bytes(token, "model.vocab"), value});
  }
  if (!unk_token.empty() && !unk_id) {
    throw FormatError(fmt::format("model.unk_token '{}' is not in model.vocab", unk_token));
  }
  BpeModel::Options options;
  options.ignore_merges = model.value("ignore_merges", false);
  options.unk_id = unk_id;
  BpeModel bpe(std::move(tokens), read_merges(member(model, "merges", "model")), options);
  if (unk_id && model.value("fuse_unk", false)) {
    // Only reachable when bytes lack tokens; tokenizers and transformers.js fuse differently.
    for (int b = 0; b < 256; ++b) {
      const char c = static_cast<char>(b);
      if (!bpe.id_of(std::string_view(&c, 1))) throw UsageError("model.fuse_unk is not supported");
    }
  }
  return bpe;
}

AddedVocabulary read_added_tokens(const json& root) {
  std::vector<AddedToken> tokens;
  if (is_set(root, "added_tokens")) {
    const json& list = root["added_tokens"];
    if (!list.is_array()) throw FormatError("added_tokens is not an array");
    for (size_t k = 0; k < list.size(); ++k) {
      const std::string where = fmt::format("added_tokens[{}]", k);
      const json& entry = list[k];
      const json& content = member(entry, "content", where);
      if (!content.is_string()) throw FormatError(fmt::format("{}.content is not a string", where));
      AddedToken token;
      token.content = content.get<std::string>();
      token.id = token_id(member(entry, "id", where), where);
      token.special = entry.value("special", false);
      token.lstrip = entry.value("lstrip", false);
      token.rstrip = entry.value("rstrip", false);
      tokens.push_back(std::move(token));
    }
  }
  return AddedVocabulary(std::move(tokens));
}

}  // namespace

Tokenizer::Tokenizer(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}

Tokenizer Tokenizer::from_file(const std::string& path) {
  const std::string text = read_file(path);
  try {
    json root;
    try {
      root = json::parse(text);
    } catch (const json::parse_error& e) {
      throw FormatError(fmt::format("not valid JSON ({})", e.what()));
    }
    if (!root.is_object()) throw FormatError("is not a JSON object");
    check_supported(root);
    PreTokenizer pre_tokenizer = PreTokenizer::from_json(root["pre_tokenizer"]);
    if (!pre_tokenizer.byte_level()) {
      throw UsageError("pre_tokenizer has no ByteLevel step: not a byte-level BPE tokenizer");
    }
    auto impl = std::make_shared<Impl>(name_from_path(path), std::move(pre_tokenizer),
                                       read_model(root["model"]), read_added_tokens(root));
    // Added tokens win over model tokens with the same id, as in the reference's decoder.
    const auto& model_tokens = impl->model.tokens_by_id();
    size_t size = model_tokens.size();
    for (const auto& token : impl->added.tokens()) size = std::max<size_t>(size, size_t{token.id} + 1);
    impl->text_by_id.assign(size, nullptr);
    for (size_t id = 0; id < model_tokens.size(); ++id) {
      if (model_tokens[id]) impl->text_by_id[id] = &*model_tokens[id];
    }
    for (const auto& token : impl->added.tokens()) impl->text_by_id[token.id] = &token.content;
    impl->eos = impl->token_to_id("<|end_of_text|>");
    if (!impl->eos) impl->eos = impl->token_to_id("<|endoftext|>");
    impl->bos = impl->token_to_id("<|begin_of_text|>");
    return Tokenizer(std::move(impl));
  } catch (const FormatError& e) {
    throw FormatError(fmt::format("{}: {}", path, e.what()));
  } catch (const UsageError& e) {
    throw UsageError(fmt::format("{}: {}", path, e.what()));
  } catch (const json::exception& e) {
    throw FormatError(fmt::format("{}: {}", path, e.what()));
  }
}

std::vector<uint32_t> Tokenizer::encode(std::string_view text) const {
  std::vector<uint32_t> ids;
  ids.reserve(text.size() / 3 + 8);
  encode(text, ids);
  return ids;
}

void Tokenizer::encode(std::string_view text, std::vector<uint32_t>& ids) const {
  const std::optional<std::string> repaired = repair_utf8(text);
  if (repaired) text = *repaired;
  thread_local std::vector<AddedVocabulary::Section> sections;
  impl_->added.split(text, sections);
  const BpeModel& model = impl_->model;
  const std::function<void(std::string_view)> encode_word = [&](std::string_view word) {
    model.encode_word(word, ids);
  };
  for (const auto& section : sections) {
    if (section.text.empty()) continue;
    if (section.token) {
      ids.push_back(section.token->id);
    } else {
      impl_->pre_tokenizer.split(section.text, encode_word);
    }
  }
}

std::string Tokenizer::decode(const std::vector<uint32_t>& ids) const {
  std::string text;
  for (const uint32_t id : ids) {
    const std::string* piece = id < impl_->text_by_id.size() ? impl_->text_by_id[id] : nullptr;
    if (!piece) {
      throw UsageError(fmt::format("token id {} is not in the vocabulary of tokenizer '{}' (size {})", id,
                                   impl_->name, impl_->text_by_id.size()));
    }
    text += *piece;
  }
  return text;
}

size_t Tokenizer::vocab_size() const { return impl_->text_by_id.size(); }

std::optional<uint32_t> Tokenizer::token_to_id(std::string_view token) const { return impl_->token_to_id(token); }

uint32_t Tokenizer::eos_id() const {
  if (!impl_->eos) {
    throw UsageError(fmt::format("tokenizer '{}' has no end-of-text token (<|end_of_text|> or <|endoftext|>)",
                                 impl_->name));
  }
  return *impl_->eos;
}

std::optional<uint32_t> Tokenizer::bos_id() const { return impl_->bos; }

const std::string& Tokenizer::name() const { return impl_->name; }

}  // namespace ssa::data
