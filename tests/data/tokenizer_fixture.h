// Shared by the tokenizer tests: fixture paths and the parity JSONL reader.
#pragma once

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

namespace ssa::test {

inline std::string tokenizer_fixture(const std::string& name) {
  return std::string(SSA_SOURCE_DIR) + "/tests/fixtures/tokenizer/" + name;
}

inline std::string read_text_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream content;
  content << in.rdbuf();
  return content.str();
}

struct ParitySample {
  std::string name;
  std::string text;
  std::vector<uint32_t> ids;  // from @lenml/tokenizers (scripts/tokenizer-fixture/make-fixture.mjs)
};

inline std::vector<ParitySample> read_parity_samples(const std::string& path) {
  std::ifstream in(path);
  std::vector<ParitySample> samples;
  for (std::string line; std::getline(in, line);) {
    if (line.empty()) continue;
    const auto record = nlohmann::json::parse(line);
    samples.push_back({record.at("name"), record.at("text"), record.at("ids").get<std::vector<uint32_t>>()});
  }
  return samples;
}

}  // namespace ssa::test
