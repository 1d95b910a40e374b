"""Token strip: a text shown as its tokens, each with hover details (id, bytes, byte offsets, score) and an
optional per-token score drawn as colour. Clicking a token selects it (`selected`, synced to Python)."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import traitlets

from workbench.views.base import InvalidState, WidgetView
from workbench.views.html import ColorScale, colored_style, escape, finite_or_none, format_number, widget_source

_VISIBLE = {" ": "\u00b7", "\n": "\u21b5", "\t": "\u2192", "\r": "\u240d"}


def display_text(data: bytes) -> str:
    """Readable text of a token's bytes: UTF-8 with invalid bytes as \\xNN and whitespace made visible."""
    if not data:
        return "\u2205"
    text = data.decode("utf-8", errors="backslashreplace")
    return "".join(_VISIBLE.get(ch, ch) for ch in text)


@dataclass(frozen=True)
class Token:
    """One token: its id (None when unknown), its bytes, its half-open byte span in the text, and a score."""

    id: int | None
    bytes: bytes
    start: int
    end: int
    score: float | None = None

    @property
    def text(self) -> str:
        return display_text(self.bytes)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "text": self.text, "bytes": self.bytes.hex(" "), "start": self.start,
                "end": self.end, "score": finite_or_none(self.score)}


def _check_scores(scores: Sequence[float | None] | None, n: int) -> list[float | None]:
    if scores is None:
        return [None] * n
    scores = list(scores.tolist() if hasattr(scores, "tolist") else scores)
    if len(scores) != n:
        raise ValueError(f"scores: expected {n} values (one per token), got {len(scores)}")
    return [finite_or_none(s) for s in scores]


class TokenStrip(WidgetView):
    """Tokens in a row. Build with `from_text`, `from_ids` or `from_pieces`; `selected` is the clicked index."""

    kind = "token-strip"
    _esm = widget_source("token_strip.js")

    tokens = traitlets.List(trait=traitlets.Instance(Token))
    title = traitlets.Unicode("")
    score_label = traitlets.Unicode("score")
    scale = traitlets.Unicode("auto")
    selected = traitlets.Int(-1).tag(sync=True)

    def __init__(self, tokens: Sequence[Token], *, title: str = "", score_label: str = "score",
                 scale: str = "auto", selected: int = -1) -> None:
        tokens = list(tokens)
        for i, token in enumerate(tokens):
            if not isinstance(token, Token):
                raise ValueError(f"tokens: item {i} must be a Token, got {type(token).__name__}")
        ColorScale([], scale)  # validates `scale` before any work
        super().__init__(tokens=tokens, title=title, score_label=score_label, scale=scale)
        self.selected = selected
        self.refresh()
        self.observe(self._on_data, names=["tokens", "title", "score_label", "scale"])

    def _on_data(self, change: Any) -> None:
        if change["name"] == "tokens" and self.selected >= len(self.tokens):
            self.selected = -1
        self.refresh()

    # ---- constructors -------------------------------------------------------------------------------
    @classmethod
    def from_pieces(cls, pieces: Sequence[str | bytes], *, ids: Sequence[int] | None = None,
                    scores: Sequence[float | None] | None = None, **options: Any) -> TokenStrip:
        """Tokens given directly as strings or bytes (offsets are their running byte positions)."""
        blobs = [p.encode("utf-8") if isinstance(p, str) else bytes(p) for p in pieces]
        if ids is not None and len(ids) != len(blobs):
            raise ValueError(f"ids: expected {len(blobs)} ids (one per piece), got {len(ids)}")
        id_list = [None] * len(blobs) if ids is None else [int(i) for i in ids]
        score_list = _check_scores(scores, len(blobs))
        tokens, position = [], 0
        for blob, token_id, score in zip(blobs, id_list, score_list):
            tokens.append(Token(token_id, blob, position, position + len(blob), score))
            position += len(blob)
        return cls(tokens, **options)

    @classmethod
    def from_ids(cls, tokenizer: Any, ids: Sequence[int], *, scores: Sequence[float | None] | None = None,
                 **options: Any) -> TokenStrip:
        """Token ids under a tokenizer (workbench Tokenizer protocol: uses `token_bytes`)."""
        ids = [int(i) for i in (ids.tolist() if hasattr(ids, "tolist") else ids)]
        return cls.from_pieces([tokenizer.token_bytes(i) for i in ids], ids=ids, scores=scores, **options)

    @classmethod
    def from_text(cls, tokenizer: Any, text: str, *, scores: Sequence[float | None] | None = None,
                  **options: Any) -> TokenStrip:
        """`text` tokenized by `tokenizer` (uses `encode_with_offsets`; bytes are the text's own bytes)."""
        if not isinstance(text, str):
            raise ValueError(f"text: must be a str, got {type(text).__name__}")
        ids, offsets = tokenizer.encode_with_offsets(text)
        data = text.encode("utf-8")
        score_list = _check_scores(scores, len(ids))
        tokens = [Token(int(i), data[s:e], s, e, score) for i, (s, e), score in zip(ids, offsets, score_list)]
        options.setdefault("title", getattr(tokenizer, "name", ""))
        return cls(tokens, **options)

    # ---- state --------------------------------------------------------------------------------------
    @traitlets.validate("selected")
    def _validate_selected(self, proposal: Any) -> int:
        value = proposal["value"]
        if not -1 <= value < len(self.tokens):
            raise InvalidState(f"selected: must be -1 (none) or a token index in [0, {len(self.tokens)}), "
                             f"got {value}")
        return value

    @property
    def selected_token(self) -> Token | None:
        return None if self.selected < 0 else self.tokens[self.selected]

    @property
    def scores(self) -> list[float | None]:
        return [t.score for t in self.tokens]

    def detail(self, index: int) -> str:
        """The hover text of token `index`."""
        t = self.tokens[index]
        parts = [f"#{index}", f"id {t.id if t.id is not None else '?'}", f"bytes {t.bytes.hex(' ') or '-'}",
                 f"offsets [{t.start}, {t.end})"]
        if t.score is not None:
            parts.append(f"{self.score_label} {format_number(t.score)}")
        return "  ".join(parts)

    # ---- rendering ----------------------------------------------------------------------------------
    def html_body(self) -> str:
        has_scores = any(s is not None for s in self.scores)
        scale = ColorScale(self.scores, self.scale) if has_scores else None
        spans = []
        for i, t in enumerate(self.tokens):
            cls = "wb-token wb-selected" if i == self.selected else "wb-token"
            style = colored_style(scale(t.score)) if scale else ""
            spans.append(f'<span class="{cls}" data-index="{i}" title="{escape(self.detail(i))}"{style}>'
                         f"{escape(t.text)}</span>")
        title = f'<div class="wb-title">{escape(self.title)}</div>' if self.title else ""
        legend = scale.legend_html(self.score_label) if scale else ""
        default = f"{len(self.tokens)} tokens; hover a token for its details, click to select it"
        detail = self.detail(self.selected) if self.selected >= 0 else default
        return (f'{title}<div class="wb-tokens">{"".join(spans)}</div>{legend}'
                f'<div class="wb-detail" data-default="{escape(default)}">{escape(detail)}</div>')

    def to_text(self) -> str:
        shown = "|".join(t.text for t in self.tokens[:40]) + ("|..." if len(self.tokens) > 40 else "")
        head = f"TokenStrip({self.title + ': ' if self.title else ''}{len(self.tokens)} tokens"
        if self.selected >= 0:
            head += f", selected #{self.selected}"
        scores = [s for s in self.scores if s is not None]
        if scores:
            head += f", {self.score_label} {format_number(min(scores))}..{format_number(max(scores))}"
        return f"{head})\n{shown}"
