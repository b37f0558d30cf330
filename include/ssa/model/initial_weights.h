// The weights that start a fresh training run from a trained model (`ssa train --init-from`,
// e.g. the 32k continuation of an 8k model). Only tensors are copied: the configured model fixes
// the architecture, so settings without weights (RoPE type, theta and scaling, attention) may
// differ from the folder's config.json, while every weight must match in name and shape.
#pragma once

#include <filesystem>

#include "ssa/model/llama.h"

namespace ssa::model {

// Copies the weights of the model folder `folder` (HF layout, single or sharded safetensors; a
// training checkpoint folder is one) into `model`, converted to its dtype and device. ConfigError
// naming the tensor when one is missing, has another shape (both shapes are named) or does not
// belong to the configured model; the rotary inv_freq buffer and the lm_head.weight of a tied
// model are ignored, as load_model_folder does.
void load_initial_weights(LlamaForCausalLM& model, const std::filesystem::path& folder);

}  // namespace ssa::model
