#include "ssa/model/tensor_file.h"

#include <fmt/format.h>

#include "ssa/io/safetensors.h"
#include "ssa/util/error.h"

namespace ssa::model {
namespace {

io::DType to_io(torch::ScalarType type) {
  switch (type) {
    case torch::kBFloat16: return io::DType::kBF16;
    case torch::kFloat16: return io::DType::kF16;
    case torch::kFloat32: return io::DType::kF32;
    case torch::kFloat64: return io::DType::kF64;
    case torch::kInt32: return io::DType::kI32;
    case torch::kInt64: return io::DType::kI64;
    case torch::kInt8: return io::DType::kI8;
    case torch::kUInt8: return io::DType::kU8;
    case torch::kBool: return io::DType::kBool;
    default: throw UsageError(fmt::format("tensor dtype {} cannot be written to safetensors", c10::toString(type)));
  }
}

torch::ScalarType to_torch(io::DType type, const std::string& origin) {
  switch (type) {
    case io::DType::kBF16: return torch::kBFloat16;
    case io::DType::kF16: return torch::kFloat16;
    case io::DType::kF32: return torch::kFloat32;
    case io::DType::kF64: return torch::kFloat64;
    case io::DType::kI32: return torch::kInt32;
    case io::DType::kI64: return torch::kInt64;
    case io::DType::kI8: return torch::kInt8;
    case io::DType::kU8: return torch::kUInt8;
    case io::DType::kBool: return torch::kBool;
    default: throw FormatError(fmt::format("{}: dtype {} has no LibTorch equivalent", origin, io::dtype_name(type)));
  }
}

}  // namespace

torch::Tensor to_tensor(const io::TensorView& view, const std::string& origin) {
  auto type = to_torch(view.dtype, origin);
  // The view points into a read-only mapping; the tensor owns writable memory.
  return torch::from_blob(const_cast<std::byte*>(view.data), view.shape, torch::TensorOptions().dtype(type)).clone();
}

void write_tensor_file(const std::filesystem::path& path, const NamedTensors& tensors,
                       const std::map<std::string, std::string>& metadata) {
  std::vector<torch::Tensor> host;  // keeps the contiguous CPU copies alive until written
  host.reserve(tensors.size());
  io::SafetensorsWriter writer;
  for (const auto& [key, value] : metadata) writer.set_metadata(key, value);
  for (const auto& [name, tensor] : tensors) {
    host.push_back(tensor.detach().to(torch::kCPU).contiguous());
    const auto& t = host.back();
    writer.add(name, to_io(t.scalar_type()), t.sizes().vec(), t.data_ptr(), t.numel() * t.element_size());
  }
  writer.write(path);
}

std::map<std::string, torch::Tensor> read_tensor_file(const std::filesystem::path& path) {
  auto file = io::SafetensorsFile::open(path);
  std::map<std::string, torch::Tensor> out;
  for (const auto& name : file.names()) out.emplace(name, to_tensor(file.tensor(name), path.string()));
  return out;
}

}  // namespace ssa::model
