"""DraftTree: the token tree a drafter proposes and a verifier checks in one target forward pass.

Node i holds a token and the index of its parent (-1: a child of the root, i.e. of the last accepted token).
Parents come before children, so the node order is a valid feeding order for one forward pass. A node's context
is the accepted prefix followed by the tokens on its root-to-node path; siblings share their parent's context.

Depth counts nodes on the path (children of the root have depth 1). For the target forward the root token (the
last accepted token, not yet in the KV cache) is fed first, then the nodes: with the root at position r, node i
sits at position r + depth[i], and it may attend the cached prefix, the root, its ancestors and itself
(tree attention as in SpecInfer, Miao et al. 2024, and Medusa, Cai et al. 2024).

`draft_probs` (optional, [n, V]) holds, per node, the draft distribution at the node's PARENT context: the
distribution the node's token was drawn from (before any without-replacement renormalisation among siblings).
Deterministic drafts (n-gram lookup, greedy top-k expansion) carry none.
"""
from __future__ import annotations

import operator
from collections.abc import Sequence

import torch

from .errors import SpeculativeTypeError


def _as_index_list(values: Sequence[int] | torch.Tensor, name: str) -> list[int]:
    if isinstance(values, torch.Tensor):
        if values.ndim != 1:
            raise ValueError(f"{name} must be one-dimensional, got shape {tuple(values.shape)}")
        if values.numel() and (values.is_floating_point() or values.is_complex() or values.dtype == torch.bool):
            raise SpeculativeTypeError(f"{name} must hold integers, got dtype {values.dtype}")
        return [int(v) for v in values.tolist()]
    if isinstance(values, (str, bytes)):
        raise SpeculativeTypeError(f"{name} must be a sequence of ints, got {values!r}")
    try:
        values = list(values)
    except TypeError:
        raise SpeculativeTypeError(f"{name} must be a sequence of ints, got {values!r}") from None
    out = []
    for i, v in enumerate(values):
        try:
            if isinstance(v, bool):
                raise TypeError
            out.append(operator.index(v))
        except TypeError:
            raise SpeculativeTypeError(f"{name}[{i}] must be an int, got {v!r}") from None
    return out


class DraftTree:
    """A draft token tree (see the module docstring). Immutable after construction."""

    def __init__(self, tokens: Sequence[int] | torch.Tensor, parents: Sequence[int] | torch.Tensor,
                 draft_probs: torch.Tensor | None = None):
        tok = _as_index_list(tokens, "tokens")
        par = _as_index_list(parents, "parents")
        if len(tok) != len(par):
            raise ValueError(f"tokens and parents must have the same length, got {len(tok)} and {len(par)}")
        for i, t in enumerate(tok):
            if t < 0:
                raise ValueError(f"tokens[{i}] must be a token id >= 0, got {t}")
        for i, p in enumerate(par):
            if not -1 <= p < i:
                raise ValueError(
                    f"parents[{i}] = {p}: a node's parent must be -1 (the root) or an earlier node "
                    f"(0..{i - 1}); list parents before their children"
                )
        if draft_probs is not None:
            if not isinstance(draft_probs, torch.Tensor) or not draft_probs.is_floating_point():
                raise ValueError("draft_probs must be a floating-point torch.Tensor [n, V] or None")
            if draft_probs.ndim != 2 or draft_probs.shape[0] != len(tok):
                raise ValueError(
                    f"draft_probs must have shape [n, V] with n = {len(tok)} nodes, got {tuple(draft_probs.shape)}"
                )
            vocab = draft_probs.shape[1]
            for i, t in enumerate(tok):
                if t >= vocab:
                    raise ValueError(f"tokens[{i}] = {t} is outside the draft vocabulary of size {vocab}")
            if not bool(torch.isfinite(draft_probs).all()) or bool((draft_probs < 0).any()):
                raise ValueError("draft_probs must be finite and >= 0 (probabilities, not logits)")
        self._tokens = tok
        self._parents = par
        self._children: dict[int, list[int]] = {-1: []}
        self._depth: list[int] = []
        for i, p in enumerate(par):
            self._children[i] = []
            self._children[p].append(i)
            self._depth.append(1 if p < 0 else self._depth[p] + 1)
        self.draft_probs = draft_probs

    # ---- builders --------------------------------------------------------------------------------------------
    @classmethod
    def empty(cls) -> DraftTree:
        """A tree with no nodes: the step decodes one token autoregressively."""
        return cls([], [])

    @classmethod
    def chain(cls, tokens: Sequence[int] | torch.Tensor, draft_probs: torch.Tensor | None = None) -> DraftTree:
        """A single chain: tokens[0] follows the root, tokens[i] follows tokens[i - 1]."""
        tok = _as_index_list(tokens, "tokens")
        return cls(tok, list(range(-1, len(tok) - 1)), draft_probs)

    @classmethod
    def from_paths(cls, paths: Sequence[Sequence[int]], merge: bool = True) -> DraftTree:
        """A tree from token paths, each starting right after the root.

        merge=True builds a trie (shared prefixes become shared nodes; siblings in order of first appearance).
        merge=False keeps every path as its own chain under the root, duplicates included: the form SpecTr's
        verifier expects for k i.i.d. draft sequences (their multiplicity matters).
        """
        tokens: list[int] = []
        parents: list[int] = []
        index: dict[tuple[int, tuple[int, ...]], int] = {}
        for k, path in enumerate(paths):
            path = _as_index_list(path, f"paths[{k}]")
            parent = -1
            for depth in range(len(path)):
                key = (0 if merge else k, tuple(path[: depth + 1]))
                if key not in index:
                    index[key] = len(tokens)
                    tokens.append(path[depth])
                    parents.append(parent)
                parent = index[key]
        return cls(tokens, parents)

    # ---- structure -------------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._tokens)

    @property
    def num_nodes(self) -> int:
        return len(self._tokens)

    @property
    def tokens(self) -> torch.Tensor:
        """Token ids [n] (long)."""
        return torch.tensor(self._tokens, dtype=torch.long)

    @property
    def parents(self) -> torch.Tensor:
        """Parent indices [n] (long, -1 = child of the root)."""
        return torch.tensor(self._parents, dtype=torch.long)

    @property
    def depth(self) -> torch.Tensor:
        """Depth of every node [n] (long; children of the root have depth 1)."""
        return torch.tensor(self._depth, dtype=torch.long)

    @property
    def max_depth(self) -> int:
        return max(self._depth, default=0)

    def token(self, node: int) -> int:
        return self._tokens[node]

    def parent(self, node: int) -> int:
        return self._parents[node]

    def children(self, node: int = -1) -> list[int]:
        """Children of `node` in order (node -1 = the root)."""
        if node not in self._children:
            raise ValueError(f"node must be -1 (the root) or in 0..{len(self) - 1}, got {node}")
        return list(self._children[node])

    def path(self, node: int) -> list[int]:
        """Node indices from the root's child down to `node` (inclusive); [] for the root (-1)."""
        if node not in self._children:
            raise ValueError(f"node must be -1 (the root) or in 0..{len(self) - 1}, got {node}")
        out = []
        while node >= 0:
            out.append(node)
            node = self._parents[node]
        return out[::-1]

    @property
    def leaves(self) -> list[int]:
        return [i for i in range(len(self)) if not self._children[i]]

    def paths(self) -> list[list[int]]:
        """Every root-to-leaf path as node indices, leaves in node order."""
        return [self.path(leaf) for leaf in self.leaves]

    def token_paths(self) -> list[list[int]]:
        """Every root-to-leaf path as token ids."""
        return [[self._tokens[i] for i in path] for path in self.paths()]

    # ---- forward-pass layout ---------------------------------------------------------------------------------
    def attention_mask(self, include_root: bool = False) -> torch.Tensor:
        """Boolean tree mask: entry [i, j] is True iff node j is an ancestor of node i or i itself.

        [n, n] over the nodes; with include_root, [n + 1, n + 1] over (root, nodes...), every row seeing the root.
        """
        n = len(self)
        off = 1 if include_root else 0
        mask = torch.zeros(n + off, n + off, dtype=torch.bool)
        if include_root:
            mask[0, 0] = True
        for i, p in enumerate(self._parents):
            row = i + off
            if p >= 0:
                mask[row] = mask[p + off]
            elif include_root:
                mask[row, 0] = True
            mask[row, row] = True
        return mask

    def position_ids(self, root_position: int, include_root: bool = False) -> torch.Tensor:
        """Positions of the nodes [n] (or of (root, nodes...) [n + 1]): node i sits at root_position + depth[i]."""
        if isinstance(root_position, bool) or not isinstance(root_position, int) or root_position < 0:
            raise ValueError(f"root_position must be an int >= 0, got {root_position!r}")
        pos = [root_position + d for d in self._depth]
        if include_root:
            pos = [root_position] + pos
        return torch.tensor(pos, dtype=torch.long)

    def prefix_mask(self, prefix_len: int, include_root: bool = True) -> torch.Tensor:
        """Boolean mask [T, prefix_len + T] for feeding (root,) nodes after `prefix_len` cached tokens."""
        if isinstance(prefix_len, bool) or not isinstance(prefix_len, int) or prefix_len < 0:
            raise ValueError(f"prefix_len must be an int >= 0, got {prefix_len!r}")
        tree = self.attention_mask(include_root)
        prefix = torch.ones(tree.shape[0], prefix_len, dtype=torch.bool)
        return torch.cat([prefix, tree], dim=1)

    # ---- values ----------------------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {"tokens": list(self._tokens), "parents": list(self._parents), "depth": list(self._depth),
                "has_draft_probs": self.draft_probs is not None}

    def __repr__(self) -> str:
        extra = ", with draft_probs" if self.draft_probs is not None else ""
        lines = [f"DraftTree(n={len(self)}, depth={self.max_depth}{extra})"]

        def walk(node: int, indent: str) -> None:
            for child in self._children[node]:
                lines.append(f"{indent}[{child}] {self._tokens[child]}")
                walk(child, indent + "  ")

        walk(-1, "  ")
        return "\n".join(lines)
