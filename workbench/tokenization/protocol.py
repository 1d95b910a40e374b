"""The unified tokenizer protocol shared by every part of the workbench.

Every adapter (HF `tokenizers`/`transformers`, tiktoken, SentencePiece, raw bytes, and the project's own
BPE) exposes the same small surface:

    name, vocab_size, bos_id, eos_id, special_ids
    encode(text, add_special_tokens=False) -> list[int]
    decode(ids) -> str
    token_bytes(token_id) -> bytes
    encode_with_offsets(text) -> (ids, byte offsets)
    apply_chat_template(messages) -> list[int]          (HF tokenizers with a chat template only)

Byte offsets are the contract the rest of the workbench builds on (attribution maps tokens back to the text,
the tokenizer lab compares segmentations byte by byte). They are half-open spans into
`text.encode("utf-8")` that tile the input exactly and in order:

    offsets[0][0] == 0,  offsets[i][1] == offsets[i + 1][0],  offsets[-1][1] == len(text.encode("utf-8"))

A span may be empty (a token that stands for no input byte, e.g. SentencePiece's dummy prefix "▁"), and a
span may cut a multi-byte UTF-8 character (byte-level BPE and byte-fallback tokens split characters). The one
input that cannot be tiled is one the backend drops entirely (whitespace-only text under a normalizer that
strips whitespace): no tokens, so no spans.

`assign_offsets` below derives the spans, in this order of preference:

1. exact: the tokens' bytes concatenate to the input -> spans are the running sums of their lengths;
2. dummy prefix: the tokens' bytes concatenate to b" " + input (SentencePiece and Llama-style HF tokenizers
   prepend a space the input does not have) -> the same running sums, shifted left by one byte, so the
   token carrying the dummy space gets a span one byte shorter (empty if it was the lone "▁");
3. otherwise (the backend normalized the text: NFKC, lower-casing, collapsed whitespace): the backend's own
   spans are used as hints and repaired into a tiling; bytes the backend dropped go to the token before them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol, runtime_checkable

Offsets = list[tuple[int, int]]


@runtime_checkable
class Tokenizer(Protocol):
    """What every tokenizer in the workbench provides (see the module docstring for the offset contract)."""

    name: str
    vocab_size: int
    bos_id: int | None
    eos_id: int | None
    special_ids: frozenset[int]

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]: ...

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = False) -> str: ...

    def token_bytes(self, token_id: int) -> bytes: ...

    def encode_with_offsets(self, text: str) -> tuple[list[int], Offsets]: ...

    def apply_chat_template(self, messages: list[dict[str, Any]]) -> list[int]: ...


class InputTypeError(TypeError, ValueError):
    """An argument of the wrong type (e.g. bytes where text is expected): a TypeError that is also a
    ValueError, so the CLI reports it as one line like every other bad input."""


def check_text(text: object, param: str = "text") -> bytes:
    """Validate `text` and return its UTF-8 bytes. Raises before any tokenization work starts."""
    if not isinstance(text, str):
        hint = " (decode bytes with .decode('utf-8') first)" if isinstance(text, (bytes, bytearray)) else ""
        raise InputTypeError(f"{param} must be a str, got {type(text).__name__}{hint}")
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as err:
        bad = text[err.start]
        raise ValueError(
            f"{param} contains a lone surrogate U+{ord(bad):04X} at character {err.start}, so it is not valid "
            "UTF-8; text paths need valid UTF-8 (work on raw bytes with a byte-level path instead)"
        ) from None


def check_ids(ids: object, vocab_size: int, param: str = "ids") -> list[int]:
    """Validate a sequence of token ids (list, tuple, numpy array or 1-D tensor) and return a list of ints."""
    if isinstance(ids, (str, bytes)) or not isinstance(ids, Iterable) and not hasattr(ids, "tolist"):
        raise InputTypeError(f"{param} must be a sequence of int token ids, got {type(ids).__name__}")
    if hasattr(ids, "tolist"):
        ids = ids.tolist()
        if not isinstance(ids, list):
            ids = [ids]
    out = []
    for pos, i in enumerate(ids):
        if isinstance(i, bool) or not isinstance(i, int):
            if hasattr(i, "__index__") and not isinstance(i, bool):
                i = i.__index__()
            else:
                raise InputTypeError(f"{param}[{pos}] must be an int token id, got {type(i).__name__}")
        if not 0 <= i < vocab_size:
            raise ValueError(f"{param}[{pos}] = {i} is out of range: token ids must be in [0, {vocab_size})")
        out.append(i)
    return out


def check_token_id(token_id: object, vocab_size: int, param: str = "token_id") -> int:
    if isinstance(token_id, bool) or not hasattr(token_id, "__index__"):
        raise InputTypeError(f"{param} must be an int, got {type(token_id).__name__}")
    token_id = token_id.__index__()
    if not 0 <= token_id < vocab_size:
        raise ValueError(f"{param} = {token_id} is out of range: token ids must be in [0, {vocab_size})")
    return token_id


def assign_offsets(
    pieces: Sequence[bytes],
    data: bytes,
    hints: Sequence[tuple[int, int]] | Callable[[], Sequence[tuple[int, int]]] | None = None,
) -> Offsets:
    """Byte spans tiling `data`, one per token, from the tokens' bytes `pieces` (and backend hint spans).

    See the module docstring for the three cases. `hints` are the backend's byte spans into `data` (or a
    function computing them, called only when needed); without them a mismatch between pieces and data is
    a bug in the adapter and raises RuntimeError.
    """
    n = len(data)
    joined = b"".join(pieces)
    if joined == data:
        return _running_spans(pieces, shift=0, n=n)
    if joined == b" " + data:
        return _running_spans(pieces, shift=1, n=n)
    if hints is None:
        raise RuntimeError(
            f"token bytes do not reproduce the input ({len(joined)} vs {len(data)} bytes) and the backend "
            "gave no spans to align them with"
        )
    if callable(hints):
        hints = hints()
    if len(hints) != len(pieces):
        raise RuntimeError(f"{len(hints)} hint spans for {len(pieces)} tokens")
    return _spans_from_hints(pieces, data, hints)


def _running_spans(pieces: Sequence[bytes], shift: int, n: int) -> Offsets:
    spans, pos = [], 0
    for piece in pieces:
        end = pos + len(piece)
        spans.append((max(pos - shift, 0), max(end - shift, 0)))
        pos = end
    if spans:
        assert spans[-1][1] == n
    return spans


def _spans_from_hints(pieces: Sequence[bytes], data: bytes, hints: Sequence[tuple[int, int]]) -> Offsets:
    """Repair backend spans into a tiling.

    Backends give every token of a run that shares one character the same start (HF: identical spans;
    SentencePiece: empty spans then the whole character on the last one). Such a run is split by the tokens'
    own byte lengths when their bytes spell exactly that character; otherwise the run's last token takes it.
    Starts are then made non-decreasing; each token ends where the next begins, the last at len(data).
    """
    n = len(data)
    clamped = [(min(max(s, 0), n), min(max(e, 0), n)) for s, e in hints]
    starts: list[int] = []
    i = 0
    while i < len(pieces):
        s = clamped[i][0]
        j = i + 1
        while j < len(pieces) and clamped[j][0] == s:
            j += 1
        e = max(end for _, end in clamped[i:j])
        group = pieces[i:j]
        if j - i > 1 and b"".join(group) == data[s:e]:
            pos = s
            for piece in group:
                starts.append(pos)
                pos += len(piece)
        else:
            starts.extend([s] * (j - i))
        i = j
    bounds = [0]
    for s in starts[1:]:
        bounds.append(min(max(s, bounds[-1]), n))
    bounds.append(n)
    return [(bounds[k], bounds[k + 1]) for k in range(len(pieces))]


class TokenizerBase:
    """Shared behaviour of the adapters: input checks before any work, offsets, repr.

    Subclasses set `name`, `vocab_size`, `bos_id`, `eos_id`, `special_ids` and implement `_encode`,
    `_decode`, `_token_bytes` and, where the backend normalizes text, `_offset_hints`.
    """

    name: str
    vocab_size: int
    bos_id: int | None = None
    eos_id: int | None = None
    special_ids: frozenset[int] = frozenset()

    # --- public API (validated) ---
    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        """Token ids of `text`. `add_special_tokens=True` adds what the backend's convention adds (HF: its
        post-processor; SentencePiece and bytes: BOS if there is one; tiktoken: nothing)."""
        check_text(text)
        return self._encode(text, bool(add_special_tokens))

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = False) -> str:
        """Text of `ids`; special tokens are rendered as the backend does (as their text; SentencePiece drops
        control tokens), or left out with `skip_special_tokens=True`."""
        ids = check_ids(ids, self.vocab_size)
        if skip_special_tokens:
            ids = [i for i in ids if i not in self.special_ids]
        return self._decode(ids)

    def token_bytes(self, token_id: int) -> bytes:
        """The bytes token `token_id` stands for; for special tokens, their text in UTF-8."""
        return self._token_bytes(check_token_id(token_id, self.vocab_size))

    def encode_with_offsets(self, text: str) -> tuple[list[int], Offsets]:
        """Token ids of `text` (no added special tokens) and their byte spans into text.encode("utf-8")."""
        data = check_text(text)
        ids, hints = self._offset_hints(text, data)
        return ids, assign_offsets([self._token_bytes(i) for i in ids], data, hints)

    def apply_chat_template(self, messages: list[dict[str, Any]], **kwargs: Any) -> list[int]:
        raise NotImplementedError(
            f"{type(self).__name__} {self.name!r} has no chat template: chat templates come with HF tokenizers "
            "whose folder has a chat_template (tokenizer_config.json or chat_template.jinja)"
        )

    # --- backend hooks ---
    def _encode(self, text: str, add_special_tokens: bool) -> list[int]:
        raise NotImplementedError

    def _decode(self, ids: list[int]) -> str:
        raise NotImplementedError

    def _token_bytes(self, token_id: int) -> bytes:
        raise NotImplementedError

    def _offset_hints(self, text: str, data: bytes) -> tuple[list[int], Any]:
        """Ids for `text` plus the backend's byte spans, or a function computing them (None when the token
        bytes always spell the input)."""
        return self._encode(text, False), None

    def __repr__(self) -> str:
        specials = ", ".join(str(i) for i in sorted(self.special_ids)[:4])
        more = ", ..." if len(self.special_ids) > 4 else ""
        return (
            f"{type(self).__name__}(name={self.name!r}, vocab_size={self.vocab_size}, bos_id={self.bos_id}, "
            f"eos_id={self.eos_id}, special_ids={{{specials}{more}}})"
        )
