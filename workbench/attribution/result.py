"""The value `attribute` returns: a targets x sources matrix with its labels, method, options and cost."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from workbench.attribution.units import Unit


@dataclass
class Cost:
    """What an attribution cost.

    forward_passes / tokens_processed come from the model's counters (a batch of B inputs of T new tokens is
    one pass and B * T tokens), including the greedy generation for target=None; evaluations counts inputs
    scored (batch rows); seconds is wall time of the whole call.
    kv_bytes_written / kv_bytes_read: KV-cache traffic of the same forward passes (`LM.kv_traffic`, defined in
    workbench.models.cache.KVTraffic). With b = layers x 2 x H_kv x head_dim x dtype bytes per position, a
    pass of B rows feeding T new tokens over P cached positions writes B * T * b and reads B * (P + T) * b
    (every visible key and value once). KV-cache reuse shows as reads without writes. 0 for models that do
    not count it.
    """

    forward_passes: int = 0
    backward_passes: int = 0
    tokens_processed: int = 0
    evaluations: int = 0
    seconds: float = 0.0
    device: str = "cpu"
    kv_bytes_written: int = 0
    kv_bytes_read: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"forward_passes": int(self.forward_passes), "backward_passes": int(self.backward_passes),
                "tokens_processed": int(self.tokens_processed), "evaluations": int(self.evaluations),
                "seconds": float(self.seconds), "device": self.device,
                "kv_bytes_written": int(self.kv_bytes_written), "kv_bytes_read": int(self.kv_bytes_read)}

    def __str__(self) -> str:
        return (f"{self.forward_passes} forward, {self.backward_passes} backward, {self.tokens_processed} tokens, "
                f"{self.evaluations} evaluations, {self.seconds:.2f} s on {self.device}, "
                f"KV {format_bytes(self.kv_bytes_written)} written, KV {format_bytes(self.kv_bytes_read)} read")


def format_bytes(n: int) -> str:
    """Bytes in binary units: 512 B, 1.5 KiB, 3.2 MiB, 1.1 GiB."""
    units = ("B", "KiB", "MiB", "GiB", "TiB")
    value, k = float(n), 0
    while abs(value) >= 1024 and k < len(units) - 1:
        value /= 1024
        k += 1
    return f"{int(n)} B" if k == 0 else f"{value:.1f} {units[k]}"


@dataclass
class Attribution:
    """An attribution of target rows to source units.

    matrix [R, S] (numpy float64): matrix[r, s] is how much source unit s drove target row r (sign and scale
        depend on the method: log-probability differences for perturbation methods, gradients for gradient
        methods, attention probabilities for attention methods).
    sources: the S source units (text, byte offsets into the prompt's UTF-8, token ids and indices).
    targets: the R rows (target tokens with byte offsets into `target_text`, or scalar "value" rows).
    target_values: [R] the scores being explained on the unperturbed input (log-probabilities for
        continuation targets), when the method computed them.
    extras: method-specific results (e.g. "stderr" [R, S] for Shapley samplers, "completeness_gap" [R] for
        integrated gradients, "per_layer_head" [L, H, R, n_tokens] for attention).
    """

    matrix: np.ndarray
    sources: list[Unit]
    targets: list[Unit]
    method: str
    options: dict[str, Any]
    granularity: str | list[tuple[int, int]]
    prompt: str
    target_kind: str
    target_text: str
    cost: Cost
    target_values: np.ndarray | None = None
    prefix_ids: list[int] = field(default_factory=list)
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.matrix.shape)  # type: ignore[return-value]

    def stderr(self) -> np.ndarray | None:
        """Standard errors [R, S] for sampling methods, else None."""
        return self.extras.get("stderr")

    def top(self, row: int = 0, k: int = 5) -> list[tuple[str, float]]:
        """The k sources with the largest attribution for target row `row`, as (text, value)."""
        if not -len(self.targets) <= row < len(self.targets):
            raise ValueError(f"row must be in [{-len(self.targets)}, {len(self.targets)}), got {row}")
        values = self.matrix[row]
        order = np.argsort(-values, kind="stable")[:k]
        return [(self.sources[i].text, float(values[i])) for i in order]

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict (arrays as nested lists, NaN / inf as None)."""
        return {
            "method": self.method,
            "options": _json(self.options),
            "granularity": self.granularity if isinstance(self.granularity, str)
            else [list(span) for span in self.granularity],
            "prompt": self.prompt,
            "prefix_ids": [int(i) for i in self.prefix_ids],
            "target_kind": self.target_kind,
            "target_text": self.target_text,
            "matrix": _json(self.matrix),
            "target_values": _json(self.target_values),
            "sources": [u.to_dict() for u in self.sources],
            "targets": [u.to_dict() for u in self.targets],
            "cost": self.cost.to_dict(),
            "extras": _json(self.extras),
        }

    def __repr__(self) -> str:
        from workbench.attribution.render import text_table

        return text_table(self)

    def view(self):
        """The interactive view of this result (`workbench.attribution.view.attribution_view`)."""
        from workbench.attribution.view import attribution_view

        return attribution_view(self)

    def show(self):
        """Display the live widget (in Jupyter) and return it."""
        return self.view().show()

    def _repr_html_(self) -> str:
        from workbench.attribution.render import html_table

        return html_table(self)


def _json(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return _json(value.tolist())
    if isinstance(value, dict):
        return {str(k): _json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json(v) for v in value]
    if isinstance(value, (np.floating, float)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    if value is None or isinstance(value, (str, int, bool)):
        return value
    return repr(value)
