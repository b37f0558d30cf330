#include "ssa/eval/results_table.h"

#include <fmt/format.h>
#include <cmath>
#include <map>
#include <set>
#include <vector>

namespace ssa::eval {
namespace {

std::string cell(const nlohmann::ordered_json& v) {
  if (v.is_number_integer()) return std::to_string(v.get<int64_t>());
  if (v.is_number()) {
    const double x = v.get<double>();
    return std::abs(x) < 1e6 ? fmt::format("{:.4f}", x) : fmt::format("{:.4e}", x);
  }
  if (v.is_string()) return v.get<std::string>();
  return "-";
}

std::string row(const std::vector<std::string>& cells) {
  std::string out = "|";
  for (const auto& c : cells) out += " " + c + " |";
  return out + "\n";
}

}  // namespace

std::string summary_markdown(const nlohmann::ordered_json& results) {
  std::vector<std::string> columns;
  std::set<std::string> known;
  for (const auto& run : results.at("runs")) {
    if (!run.contains("summary")) continue;
    for (const auto& item : run.at("summary").items()) {
      if (known.insert(item.key()).second) columns.push_back(item.key());
    }
  }
  std::vector<std::string> header{"run"};
  header.insert(header.end(), columns.begin(), columns.end());
  std::string out = row(header) + row(std::vector<std::string>(header.size(), "---"));
  for (const auto& run : results.at("runs")) {
    std::vector<std::string> cells{run.at("label").get<std::string>()};
    for (const auto& c : columns) {
      cells.push_back(run.contains("summary") && run["summary"].contains(c) ? cell(run["summary"][c]) : "-");
    }
    out += row(cells);
  }
  return out;
}

std::string niah_markdown(const nlohmann::ordered_json& run) {
  if (!run.contains("niah") || !run["niah"].contains("cells")) return "";
  std::set<int64_t> lengths;
  std::set<double> depths;
  std::map<std::pair<double, int64_t>, double> accuracy;
  for (const auto& c : run["niah"]["cells"]) {
    const int64_t length = c.at("length").get<int64_t>();
    const double depth = c.at("depth").get<double>();
    lengths.insert(length);
    depths.insert(depth);
    accuracy[{depth, length}] = c.at("accuracy").get<double>();
  }
  if (lengths.empty()) return "";
  std::vector<std::string> header{"depth \\ length"};
  for (int64_t l : lengths) header.push_back(std::to_string(l));
  std::string out = row(header) + row(std::vector<std::string>(header.size(), "---"));
  for (double d : depths) {
    std::vector<std::string> cells{fmt::format("{:g}%", d * 100)};
    for (int64_t l : lengths) {
      auto it = accuracy.find({d, l});
      cells.push_back(it == accuracy.end() ? "-" : fmt::format("{:.2f}", it->second));
    }
    out += row(cells);
  }
  return out;
}

}  // namespace ssa::eval
