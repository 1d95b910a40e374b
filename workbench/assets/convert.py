"""GGUF -> an fp32 safetensors Hugging Face folder, done once per model at fetch time.

transformers reads GGUF files itself (the `gguf` package dequantizes Q4/Q5 blocks to float), builds the
matching architecture and a fast tokenizer from the GGUF metadata. A GGUF-loaded model carries a quantizer
record that makes `save_pretrained` refuse; the weights are plain fp32 tensors by then, so the record is
dropped before saving.

transformers 5.x refuses GGUF files unless `accelerate` is installed, so it is a dependency of workbench.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

REQUIRED_FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json")


def gguf_to_hf(gguf: Path, out: Path) -> dict[str, Any]:
    """Convert the GGUF file `gguf` into an HF folder `out` (fp32 safetensors in one file + tokenizer).

    Returns facts about the model for the asset record (architecture, layers, heads, vocab, parameters).
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out.mkdir(parents=True, exist_ok=True)
    steps = tqdm(total=4, desc=f"convert {gguf.name}", unit="step", leave=False)
    with steps:
        steps.set_postfix_str("tokenizer")
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        steps.update(1)
        steps.set_postfix_str("dequantize weights")
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
        steps.update(1)
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        steps.set_postfix_str("save safetensors")
        model.save_pretrained(out, max_shard_size="1000GB")
        steps.update(1)
        steps.set_postfix_str("save tokenizer")
        tokenizer.save_pretrained(out)
        steps.update(1)
    missing = [name for name in REQUIRED_FILES if not (out / name).is_file()]
    if missing:
        raise RuntimeError(f"GGUF conversion of {gguf.name} did not produce {missing} in {out}")
    config = model.config
    info = {
        "architecture": config.model_type,
        "num_hidden_layers": config.num_hidden_layers,
        "num_attention_heads": config.num_attention_heads,
        "num_key_value_heads": getattr(config, "num_key_value_heads", config.num_attention_heads),
        "hidden_size": config.hidden_size,
        "vocab_size": config.vocab_size,
        "num_parameters": sum(p.numel() for p in model.parameters()),
        "dtype": "float32",
    }
    del model
    return info
