// `ssa init`: a freshly initialised model folder from a configuration.
#include <CLI/CLI.hpp>
#include <memory>
#include <spdlog/spdlog.h>

#include "ssa/cli/command.h"
#include "ssa/cli/config_options.h"
#include "ssa/model/model_folder.h"

namespace ssa::cli {
namespace {

struct InitOptions {
  ConfigOptions config;
  std::string out;
  uint64_t seed = 0;
  std::string dtype = "float32";
};

void run_init(const InitOptions& o) {
  config::Config c;
  if (!resolve_config(o.config, c)) return;
  model::LlamaForCausalLM m(c.model);
  m->initialize(o.seed);
  int64_t parameters = 0;
  for (const auto& p : m->parameters()) parameters += p.numel();
  model::save_model_folder(m, c.attention, o.out, model::parse_dtype(o.dtype));
  spdlog::info("wrote {} ({:.2f}M parameters, seed {}, {})", o.out, parameters / 1e6, o.seed, o.dtype);
}

const Registration kRegistration("init", [](CLI::App& app) {
  auto options = std::make_shared<InitOptions>();
  auto* cmd = app.add_subcommand("init", "Write a freshly initialised model folder (config.json + model.safetensors)");
  add_config_options(*cmd, options->config);
  cmd->add_option("--out,-o", options->out, "Model folder to write")->required();
  cmd->add_option("--seed", options->seed, "Initialisation seed");
  cmd->add_option("--dtype", options->dtype, "Weight dtype on disk")
      ->check(CLI::IsMember({"float32", "bfloat16", "float16", "float64"}));
  cmd->callback([options] { run_init(*options); });
});

}  // namespace
}  // namespace ssa::cli
