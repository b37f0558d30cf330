#!/usr/bin/env python3
"""Writes tests/fixtures/hf_llama/<case>/: a tiny random HF LlamaForCausalLM per RoPE type, saved
with save_pretrained (config.json + model.safetensors), and expected.safetensors with fixed token
ids, position ids, the float32 logits transformers computes for them and the rotary inverse
frequencies. The C++ test (tests/model/test_hf_parity.cpp) loads the folder and must reproduce the
logits within float32 rounding. Run where transformers is installed (the GPU machine):

    python3 scripts/hf-parity/make_fixture.py OUT_DIR
"""
import json
import sys
from pathlib import Path

import torch
import transformers
from safetensors.torch import save_file
from transformers import LlamaConfig, LlamaForCausalLM

CASES = {
    # name: (rope_theta, rope parameters, tie embeddings)
    "default": (500000.0, {"rope_type": "default"}, True),
    "linear": (10000.0, {"rope_type": "linear", "factor": 4.0}, False),
    "llama3": (500000.0, {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                          "high_freq_factor": 4.0, "original_max_position_embeddings": 64}, True),
    "yarn": (10000.0, {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 64,
                       "beta_fast": 32.0, "beta_slow": 1.0}, True),
}


def make_case(out: Path, name: str, theta: float, rope: dict, tie: bool, seed: int) -> None:
    torch.manual_seed(seed)
    parameters = dict(rope)
    parameters["rope_theta"] = theta
    config = LlamaConfig(
        vocab_size=128, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, head_dim=8, max_position_embeddings=256,
        rms_norm_eps=1e-5, tie_word_embeddings=tie, rope_parameters=parameters,
        bos_token_id=1, eos_token_id=2, attention_bias=False, mlp_bias=False,
        attn_implementation="eager", torch_dtype="float32",
    )
    model = LlamaForCausalLM(config).eval()
    with torch.no_grad():
        for p in model.parameters():  # larger than the default init so that errors show
            p.normal_(0.0, 0.3)
    folder = out / name
    model.save_pretrained(folder, safe_serialization=True)
    length = 24
    input_ids = torch.randint(0, config.vocab_size, (2, length), generator=torch.Generator().manual_seed(seed + 1))
    # Row 0 starts at position 0, row 1 far out, so that the scaled frequencies matter.
    position_ids = torch.stack([torch.arange(length), torch.arange(length) + 180])
    with torch.no_grad():
        logits = model(input_ids=input_ids, position_ids=position_ids).logits.float()
    rotary = model.model.rotary_emb
    save_file({
        "input_ids": input_ids.to(torch.int64).contiguous(),
        "position_ids": position_ids.to(torch.int64).contiguous(),
        "logits": logits.contiguous(),
        "inv_freq": rotary.inv_freq.float().contiguous(),
        "attention_scaling": torch.tensor([float(rotary.attention_scaling)], dtype=torch.float32),
    }, str(folder / "expected.safetensors"), metadata={"transformers": transformers.__version__})


def main() -> None:
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    for seed, (name, (theta, rope, tie)) in enumerate(CASES.items()):
        make_case(out, name, theta, rope, tie, 1000 + seed)
    (out / "README.md").write_text(
        "Tiny random HF Llama models, one per RoPE type, with the logits transformers "
        f"{transformers.__version__} computes (scripts/hf-parity/make_fixture.py).\n")
    print(json.dumps({"transformers": transformers.__version__, "torch": torch.__version__}))


if __name__ == "__main__":
    main()
