// Resolving a run configuration: layered YAML files (later files win; a file's `include:` list is
// merged before the file itself), then dotted command-line overrides `section.key=value` (win
// last), then strict validation.
#pragma once

#include <string>
#include <vector>

#include "ssa/config/config.h"

namespace YAML {
class Node;
}

namespace ssa::config {

// Loads and validates. Throws ConfigError (exit code 2) naming the offending key or file.
Config load(const std::vector<std::string>& files, const std::vector<std::string>& overrides);

// Builds a Config from an already merged YAML tree (used by load and by tests).
Config from_yaml(const YAML::Node& tree);

// Cross-field checks (divisibility, positivity, allowed combinations). Throws ConfigError.
void validate(const Config& config);

// The resolved configuration as YAML text with every key (what --dump-config prints).
std::string to_yaml(const Config& config);

// Stable hash of the resolved configuration (hex), stored in checkpoints.
std::string config_hash(const Config& config);

// The Markdown reference of every key with its default (docs/configuration.md).
std::string reference_markdown();

}  // namespace ssa::config
