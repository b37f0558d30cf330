// `ssa mc-convert`: HF dataset records (JSON Lines, as datasets' to_json writes them) of PIQA,
// HellaSwag or ARC to the multiple-choice item format of `ssa eval --tasks mc:FILE`.
#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>

#include "ssa/cli/command.h"
#include "ssa/eval/choice_conversion.h"
#include "ssa/io/atomic_file.h"
#include "ssa/util/error.h"

namespace ssa::cli {
namespace {

struct ConvertOptions {
  std::string format, in, out;
};

void run_convert(const ConvertOptions& o) {
  std::istringstream lines(io::read_file(o.in));
  std::string line, out;
  int64_t count = 0;
  for (int64_t number = 1; std::getline(lines, line); ++number) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    nlohmann::json record;
    try {
      record = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception&) {
      throw UsageError(fmt::format("{}:{}: not a JSON object", o.in, number));
    }
    try {
      const auto item = eval::convert_choice_record(o.format, record);
      out += nlohmann::json{{"query", item.query}, {"choices", item.choices}, {"gold", item.gold}}.dump() + "\n";
    } catch (const UsageError& e) {
      throw UsageError(fmt::format("{}:{}: {}", o.in, number, e.what()));
    }
    ++count;
  }
  if (count == 0) throw UsageError(o.in + " holds no records");
  io::write_file_atomic(o.out, out);
  fmt::print("{} items written to {}\n", count, o.out);
}

const Registration kRegistration("mc-convert", [](CLI::App& app) {
  auto o = std::make_shared<ConvertOptions>();
  auto* cmd = app.add_subcommand("mc-convert", "Convert PIQA / HellaSwag / ARC records (HF JSON Lines) to multiple-choice items");
  cmd->add_option("--format", o->format, "piqa | hellaswag | arc (ARC-Easy and ARC-Challenge)")
      ->required()->check(CLI::IsMember({"piqa", "hellaswag", "arc"}));
  cmd->add_option("--in", o->in, "HF records, one JSON object per line")->required();
  cmd->add_option("--out", o->out, "Items file to write (JSON Lines)")->required();
  cmd->callback([o] { run_convert(*o); });
});

}  // namespace
}  // namespace ssa::cli
