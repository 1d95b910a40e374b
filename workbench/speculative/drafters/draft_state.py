"""A draft LM's KV cache, kept in step with the target's sequence, for drafters built on a small draft model.

    state = DraftState(draft_lm, target_lm)      # checks the vocabularies (clear error naming both)
    logits = state.root_logits(context)          # draft logits [V_target] after the whole context
    rows = state.feed(nodes)                     # draft logits after each listed tree node (tree attention)
    state.commit(context, result)                # after verification: keep context + the accepted nodes' KV

The cache holds the context (every token, the last one included) followed by the tree nodes fed so far, in the
order fed. Node i sits at position len(context) - 1 + depth(i) and attends the context, its ancestors and itself
(the same tree attention as the target's verification, see workbench.models.masks). `commit` gathers the slots
of the accepted path that were fed (their keys keep their rotary positions), so the next `root_logits` only feeds
what is new: at least the bonus token.

Vocabularies: draft and target must use the same tokenizer vocabulary (same size, same bytes for every id). Their
embedding matrices may be padded to different sizes (Qwen2.5 pads to a multiple of 128), so draft logits are
aligned to the target's logit width: ids beyond the draft's width, and ids beyond the tokenizer's vocabulary
(padding rows, which stand for no token), get -inf.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:  # pragma: no cover
    from workbench.models import LM

    from ..tree import DraftTree
    from ..verifiers import VerifyResult


class VocabularyMismatchError(ValueError):
    """Draft and target tokenizers differ: draft tokens would mean something else to the target."""


def _vocabulary(tokenizer) -> list[bytes]:
    return [tokenizer.token_bytes(i) for i in range(int(tokenizer.vocab_size))]


def check_vocabularies(draft: LM, target: LM) -> int:
    """Raise VocabularyMismatchError naming both vocabularies unless the tokenizers agree; return the shared size."""
    a, b = draft.tokenizer, target.tokenizer
    name_a, name_b = getattr(a, "name", "?"), getattr(b, "name", "?")
    size_a, size_b = int(a.vocab_size), int(b.vocab_size)
    if size_a != size_b:
        raise VocabularyMismatchError(
            f"draft and target vocabularies differ: draft tokenizer {name_a!r} has {size_a} tokens, target tokenizer "
            f"{name_b!r} has {size_b}; a draft model must share the target's tokenizer")
    if a is not b:
        if a.eos_id != b.eos_id:
            raise VocabularyMismatchError(
                f"draft and target vocabularies differ: draft tokenizer {name_a!r} has eos id {a.eos_id}, target "
                f"tokenizer {name_b!r} has eos id {b.eos_id}")
        va, vb = _vocabulary(a), _vocabulary(b)
        if va != vb:
            first = next(i for i in range(size_a) if va[i] != vb[i])
            raise VocabularyMismatchError(
                f"draft and target vocabularies differ: token {first} is {va[first]!r} in the draft tokenizer "
                f"{name_a!r} ({size_a} tokens) but {vb[first]!r} in the target tokenizer {name_b!r} ({size_b} tokens)")
    for lm, role in ((draft, "draft"), (target, "target")):
        rows = lm.model.get_input_embeddings().num_embeddings
        if rows < min(size_a, lm.vocab_size):
            raise VocabularyMismatchError(f"the {role} model embeds {rows} tokens, fewer than its tokenizer's {size_a}")
    return size_a


class DraftState:
    """The draft model's cache and the tree nodes fed into it (see the module docstring)."""

    def __init__(self, draft: LM, target: LM):
        self.lm = draft
        self.token_vocab = check_vocabularies(draft, target)
        self.width = int(target.vocab_size)
        self.cache = draft.new_cache()
        self.tokens: list[int] = []  # what the cache's first slots hold (a prefix of the sequence)
        self.base = 0  # cache length when the current tree began (= len(context))
        self._parents: list[int] = []
        self._depth: list[int] = []
        self._tree_tokens: list[int] = []
        self._slot: dict[int, int] = {}  # node -> cache slot
        self.forward_calls = 0

    def align(self, logits: torch.Tensor) -> torch.Tensor:
        """Draft logits [..., V_draft] -> [..., V_target] in float32 (see the module docstring)."""
        out = torch.full((*logits.shape[:-1], self.width), float("-inf"), dtype=torch.float32)
        keep = min(logits.shape[-1], self.width, self.token_vocab)
        out[..., :keep] = logits[..., :keep].detach().to("cpu", torch.float32)
        return out

    def root_logits(self, context: Sequence[int]) -> torch.Tensor:
        """Sync the cache with `context` (feeding what it lacks, at least the last token); logits [V_target]."""
        context = list(context)
        common = 0
        limit = min(len(self.tokens), len(context) - 1)
        while common < limit and self.tokens[common] == context[common]:
            common += 1
        self.cache.crop(min(common, self.cache.length))
        out = self.lm.forward(context[common:], cache=self.cache)
        self.forward_calls += 1
        self.tokens = context
        self.base = len(context)
        self._parents, self._depth, self._tree_tokens, self._slot = [], [], [], {}
        return self.align(out.logits[0, -1])

    def add_node(self, token: int, parent: int) -> int:
        """Register a tree node (not fed yet); returns its index. Parents come before children."""
        self._tree_tokens.append(int(token))
        self._parents.append(int(parent))
        self._depth.append(1 if parent < 0 else self._depth[parent] + 1)
        return len(self._tree_tokens) - 1

    def feed(self, nodes: Sequence[int]) -> torch.Tensor:
        """Run the draft on `nodes` (each one's ancestors already fed or in `nodes` before it): logits [len, V_target]."""
        nodes = list(nodes)
        start = self.cache.length
        for j, node in enumerate(nodes):
            self._slot[node] = start + j
        total = start + len(nodes)
        mask = torch.zeros(len(nodes), total, dtype=torch.bool)
        mask[:, : self.base] = True
        for row, node in enumerate(nodes):
            while node >= 0:
                mask[row, self._slot[node]] = True
                node = self._parents[node]
        ids = [self._tree_tokens[n] for n in nodes]
        positions = [self.base - 1 + self._depth[n] for n in nodes]
        causal = len(nodes) == 1 and bool(mask.all())
        out = self.lm.forward(ids, cache=self.cache, position_ids=positions,
                              attention_mask=None if causal else mask)
        self.forward_calls += 1
        return self.align(out.logits[0])

    def tree(self, draft_probs: torch.Tensor | None = None) -> DraftTree:
        """The registered nodes as a DraftTree."""
        from ..tree import DraftTree

        return DraftTree(self._tree_tokens, self._parents, draft_probs)

    def commit(self, tree: DraftTree, result: VerifyResult) -> None:
        """Keep the context and the accepted nodes that were fed; drop every other tree slot."""
        kept = []
        for node in result.accepted_nodes:
            if node not in self._slot or node >= len(self._tree_tokens) or self._tree_tokens[node] != tree.token(node):
                break
            kept.append(node)
        slots = list(range(self.base)) + [self._slot[n] for n in kept]
        if slots != list(range(len(slots))):
            self.cache.gather(torch.tensor(slots, dtype=torch.long))
        else:
            self.cache.crop(len(slots))
        self.tokens = self.tokens[: self.base] + [self._tree_tokens[n] for n in kept]
        self._parents, self._depth, self._tree_tokens, self._slot = [], [], [], {}
