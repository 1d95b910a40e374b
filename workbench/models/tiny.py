"""Tiny seeded random models for tests: real transformers architectures, 2 layers, GQA, a byte tokenizer.

    lm = tiny_lm("llama", seed=0)           # in memory, tokenizer = ByteTokenizer (256 bytes + <eos> = 256)
    save_tiny_model(folder, "qwen2", seed=1)  # an HF folder (config.json, model.safetensors, tokenizer.json)
    LM.load(folder)                           # reads it back; identical logits

Shapes: hidden 32, 4 query heads / 2 KV heads of dim 8, MLP 64, context 256, vocab 257. Weights are drawn from
N(0, 0.25^2) with a generator seeded by `seed` (norm weights keep their HF initial values), larger than HF's
default 0.02 so that attention patterns and next-token distributions are far from uniform and equivalence
tests have something to detect. Gemma 3 gets one sliding-window layer (window 8) and one full layer, and a
final logit softcap, so those code paths are exercised too.
"""
from __future__ import annotations

from pathlib import Path

import torch

ARCHS = ("llama", "qwen2", "gemma3")
VOCAB = 257  # 256 bytes + <eos>
EOS_ID = 256
WEIGHT_STD = 0.25


def tiny_config(arch: str = "llama"):
    """The transformers config of a tiny model of `arch` ("llama" | "qwen2" | "gemma3")."""
    common = dict(
        vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, head_dim=8, max_position_embeddings=256, eos_token_id=EOS_ID, bos_token_id=None,
        pad_token_id=None, tie_word_embeddings=False,
    )
    if arch == "llama":
        from transformers import LlamaConfig

        return LlamaConfig(**common)
    if arch == "qwen2":
        from transformers import Qwen2Config

        return Qwen2Config(**common)
    if arch == "gemma3":
        from transformers import Gemma3TextConfig

        return Gemma3TextConfig(
            **common, layer_types=["sliding_attention", "full_attention"], sliding_window=8,
            query_pre_attn_scalar=8, final_logit_softcapping=30.0,
        )
    raise ValueError(f"arch must be one of {list(ARCHS)}, got {arch!r}")


def tiny_model(arch: str = "llama", seed: int = 0) -> torch.nn.Module:
    """A tiny randomly initialized causal LM (float32, eval mode), the same for the same (arch, seed)."""
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be an int, got {seed!r}")
    config = tiny_config(arch)
    from transformers import AutoModelForCausalLM

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32, attn_implementation="sdpa")
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in sorted(model.named_parameters()):
            if param.ndim >= 2 or name.endswith(".bias"):
                param.copy_(torch.randn(param.shape, generator=generator) * WEIGHT_STD)
    return model.eval()


def tiny_tokenizer():
    """The byte tokenizer of the tiny models: ids 0..255 are bytes, 256 is <eos>."""
    from workbench.tokenization.bytes import ByteTokenizer

    return ByteTokenizer(("<eos>",), eos="<eos>", name="tiny-bytes")


def tiny_lm(arch: str = "llama", seed: int = 0):
    """An `LM` over a tiny seeded model of `arch` with the byte tokenizer."""
    from workbench.models.lm import LM

    return LM(tiny_model(arch, seed), tiny_tokenizer())


def save_tiny_model(folder: str | Path, arch: str = "llama", seed: int = 0) -> Path:
    """Write a tiny model as an HF folder: config.json, model.safetensors, tokenizer.json, tokenizer_config.json."""
    from transformers import PreTrainedTokenizerFast

    folder = Path(folder)
    model = tiny_model(arch, seed)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    hf_tokenizer = PreTrainedTokenizerFast(tokenizer_object=tiny_tokenizer().to_hf(), eos_token="<eos>")
    hf_tokenizer.save_pretrained(folder)
    return folder
