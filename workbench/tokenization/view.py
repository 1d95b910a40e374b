"""Side-by-side view of one text under several tokenizers: `compare_tokenizers(text, ["gpt2", "o200k", lm])`.

One token strip per tokenizer (hover a token for its id, bytes and byte offsets; click selects it) above a table
of `metrics.summary` on the same text, one row per tokenizer (tokens, bytes/token, characters/token, fertility,
continued words, vocabulary used, Shannon and Rényi entropy/efficiency). Works offline and in saved notebooks:
the static HTML carries everything.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import ipywidgets

from workbench.tokenization.load import load_tokenizer
from workbench.views.base import View
from workbench.views.table import Table
from workbench.views.token_strip import TokenStrip

METRIC_COLUMNS = ["tokens", "bytes_per_token", "chars_per_token", "fertility", "continued_words", "vocab_used",
                  "shannon_entropy", "renyi_entropy", "renyi_efficiency"]


def _resolve(tokenizers: Sequence[Any] | Mapping[str, Any]) -> dict[str, Any]:
    items = list(tokenizers.items()) if isinstance(tokenizers, Mapping) else [(None, t) for t in tokenizers]
    if not items:
        raise ValueError("tokenizers: give at least one tokenizer (names, Tokenizer objects or LMs)")
    resolved: dict[str, Any] = {}
    for label, item in items:
        tokenizer = load_tokenizer(getattr(item, "tokenizer", item))  # an LM stands for its tokenizer
        name = str(label) if label is not None else tokenizer.name
        if name in resolved:
            raise ValueError(f"tokenizers: the label {name!r} is given twice; pass a dict {{label: tokenizer}}")
        resolved[name] = tokenizer
    return resolved


def metric_rows(text: str, tokenizers: Mapping[str, Any], alpha: float = 2.5) -> list[dict[str, Any]]:
    """One row per tokenizer label with METRIC_COLUMNS computed by `metrics.summary` on `text`."""
    from workbench.tokenization import metrics

    rows = []
    for label, tokenizer in tokenizers.items():
        long = metrics.summary(tokenizer, [text], alpha=alpha, orders=(1,))
        values = dict(zip(long["metric"], long["value"]))
        rows.append({"tokenizer": label, **{column: values.get(column) for column in METRIC_COLUMNS}})
    return rows


class TokenizerComparison(View, ipywidgets.VBox):
    """Token strips of the same text under several tokenizers, and their metric table."""

    kind = "tokenizer-comparison"

    def __init__(self, text: str, tokenizers: Sequence[Any] | Mapping[str, Any], *, alpha: float = 2.5) -> None:
        if not isinstance(text, str) or not text:
            raise ValueError(f"text: must be a non-empty str, got {text!r}")
        self.text = text
        self.tokenizers = _resolve(tokenizers)
        self.strips = {label: TokenStrip.from_text(tok, text, title="") for label, tok in self.tokenizers.items()}
        for label, strip in self.strips.items():
            strip.title = f"{label}: {len(strip.tokens)} tokens"
        self.table = Table(metric_rows(text, self.tokenizers, alpha), columns=["tokenizer", *METRIC_COLUMNS],
                           title=f"metrics on this text ({len(text.encode('utf-8'))} bytes; Rényi alpha={alpha})")
        super().__init__(children=[*self.strips.values(), self.table])

    def html_body(self) -> str:
        head = f'<div class="wb-title">{len(self.strips)} tokenizers on the same text</div>'
        return head + "".join(f"<div>{v.html_body()}</div>" for v in [*self.strips.values(), self.table])

    def to_text(self) -> str:
        lines = [f"{label}: " + " | ".join(t.text for t in strip.tokens) for label, strip in self.strips.items()]
        return "\n".join([*lines, self.table.to_text()])

    def show(self) -> TokenizerComparison:
        from IPython.display import display

        display(self)
        return self


def compare_tokenizers(text: str, tokenizers: Sequence[Any] | Mapping[str, Any], *,
                       alpha: float = 2.5) -> TokenizerComparison:
    """The side-by-side view of `text` under `tokenizers` (asset/encoding names, Tokenizer objects, LMs, or a
    dict {label: any of those}); `alpha` is the Rényi order of the entropy columns."""
    return TokenizerComparison(text, tokenizers, alpha=alpha)
