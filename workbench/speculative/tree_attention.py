"""Tree-verification attention through the `tree_attention` kernel op, as an `lm.attention` function.

The verification forward of a speculative step feeds (root, nodes...) of a DraftTree after the cached prefix,
with position ids root_position + depth and the tree mask (decode.py). Under

    with lm.attention(TreeAttention(tree)):
        out = lm.forward([root] + tree.tokens.tolist(), cache=cache,
                         position_ids=tree.position_ids(prefix, include_root=True),
                         attention_mask=tree.prefix_mask(prefix))

every layer's attention of that forward runs `workbench.kernels.tree_attention` (the CUDA kernel on CUDA
tensors with CuPy, the masked-SDPA reference otherwise): the queries attend to the whole prefix plus their
tree ancestors, with the tree mask taken from the DraftTree instead of the dense additive mask.

Calls the op does not cover go to `workbench.models.attention.reference_attention` with the layer's own mask,
so the result is always the model's: a call whose query count is not the tree's (e.g. a prefill under the same
block), a layer with attention-logit softcapping, and a sliding-window layer whose window is shorter than the
keys (the window would hide part of the prefix). `calls` counts both kinds, per kind.

check_mask=True (default) compares the additive mask the model built with the tree's own mask in every layer
and raises ValueError on a mismatch (the forward was not fed this tree); it costs one comparison (a device
sync on CUDA) per layer, so a decode loop that builds the mask from the same tree can turn it off.
"""
from __future__ import annotations

from collections import Counter

import torch

from workbench.kernels.tree_attention import key_mask, tree_attention
from workbench.models.attention import reference_attention

from .tree import DraftTree


class TreeAttention:
    """Attention function for `with lm.attention(TreeAttention(tree)):` (see the module docstring).

    include_root: the forward feeds the root before the nodes (as decode.py does); the root is then node 0 of
    the op's tree, seen by every node. backend: the kernel backend ("auto", "reference", "cupy" or None for
    WORKBENCH_KERNEL_BACKEND / auto).
    """

    def __init__(self, tree: DraftTree, include_root: bool = True, *, backend: str | None = None,
                 check_mask: bool = True):
        if not isinstance(tree, DraftTree):
            raise ValueError(f"tree must be a DraftTree, got {type(tree).__name__}")
        if not include_root and len(tree) == 0:
            raise ValueError("include_root=False needs a tree with at least one node")
        self.tree = tree
        self.include_root = bool(include_root)
        self.backend = backend
        self.check_mask = bool(check_mask)
        self.mask = tree.attention_mask(include_root=self.include_root)  # [T, T] bool
        self.calls: Counter[str] = Counter()
        self._on_device: dict[torch.device, torch.Tensor] = {}

    @property
    def num_queries(self) -> int:
        """T: the queries of the verification forward (root and nodes, or nodes only)."""
        return self.mask.shape[0]

    def _device_mask(self, device: torch.device) -> torch.Tensor:
        if device not in self._on_device:
            self._on_device[device] = self.mask.to(device)
        return self._on_device[device]

    def _unsupported(self, query: torch.Tensor, key: torch.Tensor, module) -> str | None:
        if query.shape[2] != self.num_queries:
            return "other_call"
        if getattr(module, "attn_logit_softcapping", None) is not None:
            return "softcapping"
        window = getattr(module, "sliding_window", None)
        if window is not None and key.shape[2] > window:
            return "sliding_window"
        return None

    def _check(self, attention_mask: torch.Tensor | None, tree_mask: torch.Tensor, seq: int, layer_idx) -> None:
        t = tree_mask.shape[0]
        expected = key_mask(tree_mask, seq)
        if attention_mask is None:  # plain causal attention: only a chain's mask is causal
            causal = torch.ones(t, t, dtype=torch.bool, device=tree_mask.device).tril()
            ok = bool(torch.equal(tree_mask, causal))
        else:
            visible = attention_mask[..., -t:, :] > torch.finfo(attention_mask.dtype).min / 2
            ok = tuple(visible.shape[-2:]) == tuple(expected.shape) and bool((visible == expected).all())
        if not ok:
            raise ValueError(f"layer {layer_idx}: the attention mask of this forward is not the prefix + tree mask "
                             f"of the TreeAttention's DraftTree ({len(self.tree)} nodes, include_root="
                             f"{self.include_root}); feed attention_mask=tree.prefix_mask(prefix) for the same tree")

    def __call__(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, *, layer_idx: int | None = None,
                 scaling: float, attention_mask: torch.Tensor | None = None, module=None) -> torch.Tensor:
        reason = self._unsupported(query, key, module)
        if reason is not None:
            self.calls[reason] += 1
            return reference_attention(query, key, value, layer_idx=layer_idx, scaling=scaling,
                                       attention_mask=attention_mask, module=module)
        tree_mask = self._device_mask(query.device)
        if self.check_mask:
            self._check(attention_mask, tree_mask, key.shape[2], layer_idx)
        self.calls["tree_attention"] += 1
        return tree_attention(query, key, value, tree_mask, scaling, backend=self.backend)
