"""Source units: the columns of an attribution at a granularity (token, word, sentence or user-given byte spans).

Every unit is a contiguous run of prompt tokens. Token-level methods (gradients, attention) compute one column
per token and a coarser granularity sums the columns of a unit's tokens (`aggregate`). Perturbation methods
(occlusion, Shapley, KernelSHAP) treat each unit as one feature: a word is removed as a whole, so its Shapley
value is the value of the word as a player, which in general differs from the sum of its tokens' values.

Assignment of tokens to units (all positions are byte offsets into prompt.encode("utf-8")):
- "token": one unit per token.
- "word": words are maximal runs of non-whitespace characters; a token belongs to the word holding its first
  non-whitespace byte; a whitespace-only token joins the next word (the last word at the end of the prompt).
- "sentence": sentences end after `.`, `!` or `?` (plus closing quotes or brackets) followed by whitespace, and
  at every newline; tokens are assigned as for words.
- byte spans [(start, end), ...] (half-open, non-overlapping): a token belongs to the span holding its first
  byte; tokens outside every span form "gap" units between them, so the columns still cover the whole prompt.
"""
from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

GRANULARITIES = ("token", "word", "sentence")

_SENTENCE_END = re.compile(r"[.!?]+[\"')\]\u2019\u201d]*(?=\s)|\n")


@dataclass
class Unit:
    """One row or column label: its text, byte span [start, end) into its text, and the tokens it covers.

    kind: "token", "word", "sentence", "span", "gap" (prompt bytes outside the given spans), or "value" for a
    target row that is a scalar rather than a token (contrastive targets, target functions); such rows have
    start = end = 0 and no tokens.
    """

    text: str
    start: int
    end: int
    token_indices: list[int] = field(default_factory=list)
    token_ids: list[int] = field(default_factory=list)
    kind: str = "token"

    def to_dict(self) -> dict[str, Any]:
        return {
            "text": self.text, "start": int(self.start), "end": int(self.end),
            "token_indices": [int(i) for i in self.token_indices], "token_ids": [int(i) for i in self.token_ids],
            "kind": self.kind,
        }


def check_granularity(granularity: object) -> str | list[tuple[int, int]]:
    """Validate the granularity's form (before any work): a name in GRANULARITIES or a list of byte spans."""
    if isinstance(granularity, str):
        if granularity not in GRANULARITIES:
            raise ValueError(
                f"granularity must be one of {list(GRANULARITIES)} or a list of (start, end) byte spans, "
                f"got {granularity!r}"
            )
        return granularity
    if not isinstance(granularity, (list, tuple)) or not granularity:
        raise ValueError(
            f"granularity must be one of {list(GRANULARITIES)} or a non-empty list of (start, end) byte spans, "
            f"got {granularity!r}"
        )
    spans = []
    for k, span in enumerate(granularity):
        if (not isinstance(span, (list, tuple)) or len(span) != 2
                or any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) for v in span)):
            raise ValueError(f"granularity span {k} must be a pair of int byte offsets (start, end), got {span!r}")
        start, end = int(span[0]), int(span[1])
        if not 0 <= start < end:
            raise ValueError(f"granularity span {k} = {span!r} must satisfy 0 <= start < end")
        spans.append((start, end))
    ordered = sorted(spans)
    for (_, e0), (s1, _) in itertools.pairwise(ordered):
        if s1 < e0:
            raise ValueError(f"granularity spans must not overlap, got {spans}")
    return ordered


def token_units(ids: Sequence[int], offsets: Sequence[tuple[int, int]], data: bytes) -> list[Unit]:
    """One unit per token."""
    return [
        Unit(_text(data, s, e), s, e, [i], [int(t)], "token") for i, (t, (s, e)) in enumerate(zip(ids, offsets))
    ]


def build_units(granularity: str | list[tuple[int, int]], ids: Sequence[int], offsets: Sequence[tuple[int, int]],
                data: bytes) -> list[Unit]:
    """The source units of a prompt (see the module docstring); `granularity` as returned by check_granularity."""
    if granularity == "token":
        return token_units(ids, offsets, data)
    if granularity in ("word", "sentence"):
        segments = _words(data) if granularity == "word" else _sentences(data)
        owner = [_segment_of(_anchor(data, s, e), segments) for s, e in offsets]
        kinds = [granularity] * len(segments)
    else:
        spans = granularity
        if spans[-1][1] > len(data):
            raise ValueError(
                f"granularity span {spans[-1]} ends after the prompt, which has {len(data)} bytes"
            )
        segments, kinds, pos = [], [], 0
        for s, e in spans:
            if s > pos:
                segments.append((pos, s))
                kinds.append("gap")
            segments.append((s, e))
            kinds.append("span")
            pos = e
        if pos < len(data):
            segments.append((pos, len(data)))
            kinds.append("gap")
        owner = [_segment_of(s, segments) for s, _ in offsets]
    owner = _fill_whitespace(owner)
    groups: list[tuple[int, list[int]]] = []
    for i, seg in enumerate(owner):
        if groups and groups[-1][0] == seg:
            groups[-1][1].append(i)
        else:
            groups.append((seg, [i]))
    units = []
    for seg, members in groups:
        start, end = offsets[members[0]][0], offsets[members[-1]][1]
        units.append(Unit(_text(data, start, end), start, end, members, [int(ids[i]) for i in members], kinds[seg]))
    return units


def aggregation_matrix(units: Sequence[Unit], n_tokens: int) -> np.ndarray:
    """[n_tokens, n_units] 0/1 matrix: token i belongs to unit u. token_matrix @ it sums columns per unit."""
    out = np.zeros((n_tokens, len(units)))
    for u, unit in enumerate(units):
        out[unit.token_indices, u] = 1.0
    return out


def _text(data: bytes, start: int, end: int) -> str:
    return data[start:end].decode("utf-8", errors="replace")


def _byte_spans(text: str, spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Character spans of `text` -> byte spans of its UTF-8."""
    at = np.cumsum([0] + [len(ch.encode("utf-8")) for ch in text])
    return [(int(at[s]), int(at[e])) for s, e in spans]


def _words(data: bytes) -> list[tuple[int, int]]:
    text = data.decode("utf-8")
    return _byte_spans(text, [(m.start(), m.end()) for m in re.finditer(r"\S+", text)])


def _sentences(data: bytes) -> list[tuple[int, int]]:
    text = data.decode("utf-8")
    segments, pos = [], 0
    for m in _SENTENCE_END.finditer(text):
        if text[pos:m.end()].strip():
            segments.append((pos, m.end()))
            pos = m.end()
    if text[pos:].strip():
        segments.append((pos, len(text)))
    return _byte_spans(text, segments)


def _anchor(data: bytes, start: int, end: int) -> int | None:
    """Byte offset of the first non-whitespace byte in [start, end), None for a whitespace-only token."""
    for k in range(start, end):
        if not data[k:k + 1].isspace():
            return k
    return None


def _segment_of(pos: int | None, segments: Sequence[tuple[int, int]]) -> int | None:
    """Index of the segment holding byte `pos` (the nearest one before it if it falls between segments)."""
    if pos is None or not segments:
        return None
    best = 0
    for k, (s, _) in enumerate(segments):
        if s <= pos:
            best = k
        else:
            break
    return best


def _fill_whitespace(owner: list[int | None]) -> list[int]:
    """Whitespace-only tokens (owner None) join the next assigned token's segment, else the previous one."""
    out: list[int | None] = list(owner)
    nxt: int | None = None
    for i in range(len(out) - 1, -1, -1):
        if out[i] is None:
            out[i] = nxt
        else:
            nxt = out[i]
    prev = 0
    for i, seg in enumerate(out):
        if seg is None:
            out[i] = prev
        else:
            prev = seg
    return [int(s) for s in out]  # type: ignore[arg-type]
