"""A hand-built model with known attributions: its logits are a linear function of the input embeddings.

    logits[t] = (sum_{s <= t} a[s] * e[s]) @ U        e[s]: embedding of the token at position s

so the logit of token y at the last prompt position is f = sum_s a[s] * (e[s] . U[:, y]), an additive function
of the tokens. For it every method has a closed-form answer (see test_known_answers.py). It exposes the part of
the `LM` interface attribution uses (tokenizer, embed, forward with a KVCache, counters, sizes) in float64.
"""
from __future__ import annotations

from types import SimpleNamespace

import torch

from workbench.models import Counters, ForwardOutput, KVCache
from workbench.tokenization import ByteTokenizer


class LinearLM:
    def __init__(self, seed: int = 0, hidden: int = 8, context: int = 64):
        g = torch.Generator().manual_seed(seed)
        self.tokenizer = ByteTokenizer(("<eos>",), eos="<eos>", name="bytes")
        self.vocab_size = self.tokenizer.vocab_size
        self.hidden_size = hidden
        self.max_context = context
        self.num_layers = 1
        self.num_heads = 1
        self.E = torch.randn(self.vocab_size, hidden, generator=g, dtype=torch.float64)
        self.U = torch.randn(hidden, self.vocab_size, generator=g, dtype=torch.float64)
        self.a = torch.randn(context, generator=g, dtype=torch.float64)
        self.counters = Counters()
        self.config = SimpleNamespace(pad_token_id=None)
        self.device = torch.device("cpu")
        self.dtype = torch.float64

    def embed(self, ids) -> torch.Tensor:
        ids = torch.as_tensor(ids, dtype=torch.long)
        return self.E[ids if ids.ndim == 2 else ids[None]]

    def new_cache(self) -> KVCache:
        return KVCache(1)

    def contribution(self, ids: list[int], y: int) -> torch.Tensor:
        """The exact additive contribution of each position to the logit of y at the last position."""
        return self.a[: len(ids)] * (self.E[ids] @ self.U[:, y])

    def forward(self, input_ids=None, *, cache=None, inputs_embeds=None, output_attentions=False, grad=None,
                **unused) -> ForwardOutput:
        e = self.embed(input_ids) if inputs_embeds is None else inputs_embeds
        cache = self.new_cache() if cache is None else cache
        past, (batch, new) = cache.length, e.shape[:2]
        self.counters.record(batch * new)
        weights = self.a[past:past + new][None, :, None]
        earlier = 0.0
        if past:
            earlier = (cache.keys(0)[:, 0] * self.a[:past][None, :, None]).sum(1, keepdim=True)
        hidden = earlier + (e * weights).cumsum(1)
        cache.hf.layers[0].update(e.detach()[:, None], e.detach()[:, None])
        cache.record_positions(torch.arange(past, past + new)[None])
        return ForwardOutput(logits=hidden @ self.U, cache=cache)
