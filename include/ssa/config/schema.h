// The configuration schema: every key, its type, default, allowed values and documentation.
// One registry drives loading (strict: unknown keys are errors), dumping (--dump-config) and the
// generated reference (docs/configuration.md).
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "ssa/config/config.h"

namespace YAML {
class Node;
}

namespace ssa::config {

struct Field {
  std::string key;                   // dotted path, e.g. "model.hidden_size"
  std::string type;                  // "int", "float", "bool", "string", "int list", ...
  std::string doc;                   // one or two sentences for docs/configuration.md
  std::vector<std::string> choices;  // allowed values of an enumerated string, else empty
  bool nullable = false;             // may be set to null (optional values)
  std::function<void(Config&, const YAML::Node&)> assign;  // throws ConfigError naming the key
  std::function<YAML::Node(const Config&)> emit;
};

// The schema of Config, in documentation order.
const std::vector<Field>& schema();

// The field for `key`, or nullptr.
const Field* find_field(const std::string& key);

// Dotted keys that group several fields (e.g. "model.rope_scaling"); a group may be set to null
// (reset to defaults) or to a map of its fields.
bool is_group(const std::string& key);

// The known key closest to `key` by edit distance (for "did you mean" hints).
std::string closest_key(const std::string& key);

// Section titles and the one-paragraph description that heads each in the reference.
struct Section {
  std::string name;
  std::string doc;
};
const std::vector<Section>& sections();

}  // namespace ssa::config
