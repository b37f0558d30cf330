// What may change between a saved run and the run resuming it. Model shape (it would not fit
// the saved weights) and the shard set (the data position would mean other rows) may not;
// everything else (learning rate, steps, schedule, logging, ...) may and is reported.
#pragma once

#include <string>
#include <vector>

#include "ssa/config/config.h"

namespace ssa::train {

struct ConfigChange {
  std::string key;
  std::string saved;
  std::string now;
};

// Keys whose change makes the saved weights unusable.
const std::vector<std::string>& model_shape_keys();

// Compares the saved run's resolved configuration (YAML text) with the current one. Throws
// UsageError naming the first changed shape key (or a saved configuration that no longer
// parses), and when the data fingerprints differ; returns the other changed keys.
std::vector<ConfigChange> check_resume(const std::string& saved_config_yaml, const config::Config& now,
                                       const std::string& saved_fingerprint, const std::string& fingerprint,
                                       const std::string& origin);

}  // namespace ssa::train
