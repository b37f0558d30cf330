// LibTorch tensors to and from safetensors files (the torch-free format code is in ssa/io).
#pragma once

#include <filesystem>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "ssa/compat/torch_compat.h"

namespace ssa::io {
struct TensorView;
}

namespace ssa::model {

using NamedTensors = std::vector<std::pair<std::string, torch::Tensor>>;

// Writes atomically; tensors are copied to contiguous CPU memory in their own dtype.
void write_tensor_file(const std::filesystem::path& path, const NamedTensors& tensors,
                       const std::map<std::string, std::string>& metadata = {});

// A CPU tensor copied out of a safetensors view (`origin` names the file in errors).
torch::Tensor to_tensor(const io::TensorView& view, const std::string& origin);

// Reads every tensor of a file into CPU tensors of the stored dtype.
std::map<std::string, torch::Tensor> read_tensor_file(const std::filesystem::path& path);

}  // namespace ssa::model
