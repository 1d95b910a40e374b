"""The model layer: `LM` over transformers causal LMs, its KV cache, attention override and tiny test models."""
from workbench.models.attention import reference_attention
from workbench.models.cache import KVCache
from workbench.models.counters import Counters
from workbench.models.lm import LM
from workbench.models.masks import causal_mask, tree_mask
from workbench.models.outputs import ForwardOutput, Generation
from workbench.models.sampling import next_token_probs, sample
from workbench.models.tiny import save_tiny_model, tiny_lm

__all__ = [
    "LM", "Counters", "ForwardOutput", "Generation", "KVCache", "causal_mask", "next_token_probs",
    "reference_attention", "sample", "save_tiny_model", "tiny_lm", "tree_mask",
]
