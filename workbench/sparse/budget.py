"""How many cached tokens a selector may keep: a token count or a ratio of the context, per layer / per head.

    Budget(tokens=64)                                # 64 tokens for every KV head of every layer
    Budget(ratio=0.125)                              # 1/8 of the context (rounded up, at least 1 token)
    Budget(tokens=64, layers={0: Budget(tokens=256)}) # layer 0 gets more
    Budget(tokens=64, heads=(32, 64, 128))           # one budget per KV head (overrides `tokens`)
    Budget.of(64), Budget.of(0.125)                  # int -> tokens, float -> ratio

`resolve()` turns a budget into a token count per KV head for one layer and one context length. A budget
larger than the context selects every token (during decoding the context grows past the budget);
`check()` is the strict form used before an evaluation starts, where such a budget is an input error.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from numbers import Integral, Real


@dataclass(frozen=True)
class Budget:
    """A token budget: exactly one of `tokens` / `ratio`, or per-head budgets in `heads`."""

    tokens: int | None = None
    ratio: float | None = None
    layers: Mapping[int, Budget] = field(default_factory=dict)
    heads: tuple[Budget, ...] | None = None

    def __post_init__(self) -> None:
        if self.tokens is not None and self.ratio is not None:
            raise ValueError(f"budget: give tokens or ratio, not both (tokens={self.tokens}, ratio={self.ratio})")
        if self.tokens is None and self.ratio is None and self.heads is None:
            raise ValueError("budget: give tokens (a positive int), ratio (in (0, 1]) or heads (one per KV head)")
        if self.tokens is not None:
            _check_tokens(self.tokens)
        if self.ratio is not None:
            _check_ratio(self.ratio)
        if not isinstance(self.layers, Mapping):
            raise ValueError(f"budget.layers must map layer index -> budget, got {type(self.layers).__name__}")
        layers = {}
        for idx, sub in self.layers.items():
            if not isinstance(idx, Integral) or isinstance(idx, bool) or idx < 0:
                raise ValueError(f"budget.layers keys must be layer indices >= 0, got {idx!r}")
            sub = Budget.of(sub)
            if sub.layers:
                raise ValueError("budget.layers: a per-layer budget cannot itself have per-layer budgets")
            layers[int(idx)] = sub
        object.__setattr__(self, "layers", layers)
        if self.heads is not None:
            heads = tuple(Budget.of(h) for h in self.heads)
            if not heads:
                raise ValueError("budget.heads must list one budget per KV head, got an empty sequence")
            if any(h.heads is not None or h.layers for h in heads):
                raise ValueError("budget.heads entries must be plain token counts or ratios")
            object.__setattr__(self, "heads", heads)

    @staticmethod
    def of(value: Budget | float) -> Budget:
        """Coerce: a Budget as is, an int as a token count, a float as a ratio of the context."""
        if isinstance(value, Budget):
            return value
        if isinstance(value, bool):
            raise ValueError(f"budget must be a token count (int), a ratio (float in (0, 1]) or a Budget, got {value!r}")
        if isinstance(value, Integral):
            return Budget(tokens=int(value))
        if isinstance(value, Real):
            return Budget(ratio=float(value))
        raise ValueError(
            f"budget must be a token count (int), a ratio (float in (0, 1]) or a Budget, got {type(value).__name__}"
        )

    def for_layer(self, layer_idx: int) -> Budget:
        """The budget that applies to one layer (its override if any, else this one)."""
        return self.layers.get(layer_idx, self)

    def resolve(self, context_len: int, num_kv_heads: int, layer_idx: int = 0, clip: bool = True) -> list[int]:
        """Token count per KV head for one layer at a context of `context_len` tokens.

        With clip=True a budget above the context is clipped to it (select everything); with clip=False it is
        a ValueError naming the budget (the check an evaluation on a fixed context runs first).
        """
        if context_len < 1:
            raise ValueError(f"context_len must be >= 1, got {context_len}")
        b = self.for_layer(layer_idx)
        if b.heads is not None:
            if len(b.heads) != num_kv_heads:
                raise ValueError(
                    f"budget.heads has {len(b.heads)} entries but the layer has {num_kv_heads} KV heads"
                )
            parts = list(b.heads)
        else:
            parts = [b] * num_kv_heads
        out = []
        for part in parts:
            k = part.tokens if part.tokens is not None else max(1, math.ceil(part.ratio * context_len - 1e-9))
            if k > context_len and not clip:
                raise ValueError(f"budget: {k} tokens is larger than the context ({context_len} tokens)")
            out.append(min(k, context_len))
        return out

    def check(self, context_len: int, num_kv_heads: int, num_layers: int = 1) -> None:
        """Raise ValueError if any layer's budget is larger than `context_len` (or has the wrong head count)."""
        for layer in range(num_layers):
            self.resolve(context_len, num_kv_heads, layer, clip=False)
        for layer in self.layers:
            if layer >= num_layers:
                raise ValueError(f"budget.layers names layer {layer} but the model has {num_layers} layers")

    def to_dict(self) -> dict:
        d: dict = {}
        if self.tokens is not None:
            d["tokens"] = self.tokens
        if self.ratio is not None:
            d["ratio"] = self.ratio
        if self.layers:
            d["layers"] = {str(i): b.to_dict() for i, b in self.layers.items()}
        if self.heads is not None:
            d["heads"] = [h.to_dict() for h in self.heads]
        return d

    def __str__(self) -> str:
        base = f"{self.tokens} tokens" if self.tokens is not None else (
            f"ratio {self.ratio:g}" if self.ratio is not None else "per head")
        if self.heads is not None and (self.tokens is not None or self.ratio is not None):
            base += " (per-head overrides)"
        return base + (f", {len(self.layers)} layer overrides" if self.layers else "")


def _check_tokens(tokens: object) -> None:
    if isinstance(tokens, bool) or not isinstance(tokens, Integral):
        raise ValueError(f"budget: tokens must be a positive int, got {tokens!r}")
    if tokens <= 0:
        raise ValueError(f"budget: tokens must be > 0, got {tokens}")


def _check_ratio(ratio: object) -> None:
    if isinstance(ratio, bool) or not isinstance(ratio, Real) or math.isnan(ratio):
        raise ValueError(f"budget: ratio must be a number in (0, 1], got {ratio!r}")
    if not 0 < ratio <= 1:
        raise ValueError(f"budget: ratio must be in (0, 1], got {ratio}")
