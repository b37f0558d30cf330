#!/usr/bin/env bash
# Prints what the GPU machine's PyTorch/LibTorch offers (versions, ABI, SDPA signature, rope code).
set -u
python3 - <<'PY'
import torch, inspect, transformers
print("torch", torch.__version__, "cuda", torch.version.cuda, "cudnn", torch.backends.cudnn.version())
print("cxx11abi", torch._C._GLIBCXX_USE_CXX11_ABI, "prefix", torch.utils.cmake_prefix_path)
from transformers import modeling_rope_utils as m
for fn in ("_compute_yarn_parameters", "_compute_llama3_parameters", "_compute_linear_scaling_rope_parameters"):
    f = getattr(m, fn, None)
    print("=====", fn); print(inspect.getsource(f) if f else "missing")
PY
TP=$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)')
grep -n "scaled_dot_product_attention(" "$TP/../../include/ATen/ops/scaled_dot_product_attention.h" | head -5
grep -rn "setSDPUseCuDNN\|setSDPPriorityOrder\|userEnabledCuDNNSDP" "$TP/../../include/ATen/Context.h" | head
grep -n "CMAKE_CXX_STANDARD\|cxx_std" "$TP/Torch/TorchConfig.cmake" | head
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
