"""BPETokenizer: the project's own byte-level BPE encoder (Sennrich et al. 2016, "Neural Machine Translation
of Rare Words with Subword Units"; byte-level as in GPT-2, Radford et al. 2019).

Vocabulary layout: ids 0..255 are the single bytes (id == byte value); merge k creates the token
bytes(left) + bytes(right), which gets the next free id unless a token with those bytes already exists (then
that id is reused, as HF's trainer does, so ids stay unique per byte string); special tokens come last.

Encoding: special tokens are cut out, the rest is split into pre-tokens (pretokenize.py), and each pre-token
starts as its bytes and repeatedly merges the adjacent pair of lowest merge rank, leftmost first, one pair at
a time, until no adjacent pair has a merge. This is the rule HF `tokenizers`' BPE model and tiktoken apply,
so `to_hf()` gives a `tokenizers.Tokenizer` with exactly the same ids. Pre-tokens repeat a lot, so their ids
are cached.

Text paths need valid UTF-8 (`encode` rejects lone surrogates); `encode_bytes` takes raw bytes: invalid
UTF-8 bytes become lone-surrogate characters for pre-tokenization only ("surrogateescape") and encode as
their original byte tokens, so decode_bytes(encode_bytes(data)) == data for any bytes.
"""

from __future__ import annotations

import heapq
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from workbench.tokenization.pretokenize import DEFAULT_PATTERN, Pretokenizer
from workbench.tokenization.protocol import InputTypeError, TokenizerBase, check_ids

FORMAT_FILE = "workbench_bpe.json"
_CACHE_LIMIT = 200_000
_SCAN_LIMIT = 48  # pre-tokens up to this many bytes merge by rescanning; longer ones with a heap


def add_merges(
    table: list[bytes], merges: Sequence[tuple[int, int]], param: str, what: str
) -> tuple[list[tuple[int, int]], dict[tuple[int, int], tuple[int, int]], dict[bytes, int]]:
    """Check the merge list `merges` (the parameter `param`, one `what` each) against the byte table `table`
    and extend `table` in place with the tokens they create (an existing byte string keeps its id).

    Returns (the merges as int pairs, pair -> (rank, merged id), bytes -> id)."""
    ids = {piece: i for i, piece in enumerate(table)}
    pairs: list[tuple[int, int]] = []
    ranks: dict[tuple[int, int], tuple[int, int]] = {}
    for rank, pair in enumerate(merges):
        if not (isinstance(pair, (tuple, list)) and len(pair) == 2):
            raise ValueError(f"{param}[{rank}] must be a pair of token ids, got {pair!r}")
        a, b = (int(x) for x in pair)
        if not (0 <= a < len(table) and 0 <= b < len(table)):
            raise ValueError(f"{param}[{rank}] = {pair!r} names a token that does not exist yet "
                             f"(ids must be < {len(table)} at that rank)")
        if (a, b) in ranks:
            raise ValueError(f"{param}[{rank}] = {pair!r} repeats an earlier {what}")
        merged = table[a] + table[b]
        if merged not in ids:
            ids[merged] = len(table)
            table.append(merged)
        ranks[(a, b)] = (rank, ids[merged])
        pairs.append((a, b))
    return pairs, ranks, ids


def merge_by_rank(ids: list[int], ranks: dict[tuple[int, int], tuple[int, int]]) -> list[int]:
    """Repeatedly merge the adjacent pair of lowest rank (leftmost on ties) until none has a rank.

    `ranks` maps a pair to (rank, merged id). O(n log n): a linked list of symbols and a heap of (rank,
    position) candidates, checked when popped (positions keep their order under merging)."""
    n = len(ids)
    if n < 2:
        return list(ids)
    ids = list(ids)
    nxt = list(range(1, n + 1))
    prv = list(range(-1, n - 1))
    alive = [True] * n
    heap = []
    for i in range(n - 1):
        found = ranks.get((ids[i], ids[i + 1]))
        if found is not None:
            heap.append((found[0], i, ids[i], ids[i + 1]))
    heapq.heapify(heap)
    while heap:
        _, i, a, b = heapq.heappop(heap)
        j = nxt[i] if alive[i] else n
        if j >= n or ids[i] != a or ids[j] != b:
            continue  # stale: one side was merged away since this candidate was pushed
        ids[i] = ranks[(a, b)][1]
        alive[j] = False
        nxt[i] = nxt[j]
        if nxt[i] < n:
            prv[nxt[i]] = i
        for left in (prv[i], i):
            if left >= 0 and nxt[left] < n:
                found = ranks.get((ids[left], ids[nxt[left]]))
                if found is not None:
                    heapq.heappush(heap, (found[0], left, ids[left], ids[nxt[left]]))
    return [ids[i] for i in range(n) if alive[i]]


class ByteTableTokenizer(TokenizerBase):
    """What BPETokenizer and SuperBPETokenizer share: a byte string per token id, special tokens after."""

    special_tokens: tuple[str, ...]

    def _set_vocabulary(self, table: list[bytes], bos: str | None, eos: str | None) -> None:
        self._bytes = table
        self.num_base_tokens = len(table)
        self._special_ids = {s: len(table) + k for k, s in enumerate(self.special_tokens)}
        self.special_ids = frozenset(self._special_ids.values())
        self.vocab_size = len(table) + len(self.special_tokens)
        for param, value in (("bos", bos), ("eos", eos)):
            if value is not None and value not in self._special_ids:
                raise ValueError(f"{param}={value!r} must be one of special_tokens {self.special_tokens} (or None)")
        self.bos_id = self._special_ids[bos] if bos is not None else None
        self.eos_id = self._special_ids[eos] if eos is not None else None

    def _decode(self, ids: list[int]) -> str:
        return b"".join(self._token_bytes(i) for i in ids).decode("utf-8", errors="replace")

    def _token_bytes(self, token_id: int) -> bytes:
        if token_id < self.num_base_tokens:
            return self._bytes[token_id]
        return self.special_tokens[token_id - self.num_base_tokens].encode("utf-8")


class BPETokenizer(ByteTableTokenizer):
    """Byte-level BPE from an ordered merge list of id pairs (see the module docstring)."""

    def __init__(
        self,
        merges: Sequence[tuple[int, int]],
        *,
        pattern: str = DEFAULT_PATTERN,
        special_tokens: Sequence[str] = (),
        bos: str | None = None,
        eos: str | None = None,
        name: str = "bpe",
    ) -> None:
        self.name = name
        self._pre = Pretokenizer(pattern, special_tokens)
        self.pattern = pattern
        self.special_tokens = self._pre.special_tokens
        table: list[bytes] = [bytes([b]) for b in range(256)]
        self.merges, self._ranks, self._ids = add_merges(table, merges, "merges", "merge")
        self._set_vocabulary(table, bos, eos)
        self._bos, self._eos = bos, eos
        self._cache: dict[str, tuple[int, ...]] = {}

    # --- the BPE rule on one pre-token ---
    def bpe(self, piece: bytes) -> list[int]:
        """Token ids of one pre-token's bytes (merges by rank, leftmost first, one at a time)."""
        if len(piece) <= _SCAN_LIMIT:
            return self._bpe_scan(list(piece))
        return self._bpe_heap(list(piece))

    def _bpe_scan(self, ids: list[int]) -> list[int]:
        ranks = self._ranks
        while len(ids) > 1:
            best, pos = None, -1
            for i in range(len(ids) - 1):
                found = ranks.get((ids[i], ids[i + 1]))
                if found is not None and (best is None or found[0] < best[0]):
                    best, pos = found, i
            if best is None:
                break
            ids[pos : pos + 2] = [best[1]]
        return ids

    def _bpe_heap(self, ids: list[int]) -> list[int]:
        """The same rule for long pre-tokens in O(n log n) (`merge_by_rank`)."""
        return merge_by_rank(ids, self._ranks)

    def _piece_ids(self, piece: str) -> tuple[int, ...]:
        ids = self._cache.get(piece)
        if ids is None:
            ids = tuple(self.bpe(piece.encode("utf-8", "surrogateescape")))
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
            self._cache[piece] = ids
        return ids

    # --- protocol ---
    def _encode(self, text: str, add_special_tokens: bool) -> list[int]:
        out = [self.bos_id] if add_special_tokens and self.bos_id is not None else []
        piece_ids = self._piece_ids
        for part, special in self._pre.split_specials(text):
            if special:
                out.append(self._special_ids[part])
            else:
                for piece in self._pre.split(part):
                    out.extend(piece_ids(piece))
        return out

    def token_id(self, piece: bytes) -> int | None:
        """Id of the token spelling `piece` (special tokens excluded), or None."""
        return self._ids.get(piece)

    # --- raw bytes ---
    def encode_bytes(self, data: bytes) -> list[int]:
        """Token ids of arbitrary bytes (not necessarily UTF-8; special-token text inside still maps to them)."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise InputTypeError(f"data must be bytes, got {type(data).__name__} (use encode() for text)")
        return self._encode(bytes(data).decode("utf-8", "surrogateescape"), False)

    def decode_bytes(self, ids: Sequence[int]) -> bytes:
        """The exact bytes of `ids` (no UTF-8 decoding, so nothing is replaced)."""
        return b"".join(self._token_bytes(i) for i in check_ids(ids, self.vocab_size))

    # --- export / persistence ---
    def to_hf(self) -> Any:
        """An equivalent `tokenizers.Tokenizer`: same ids for every valid-UTF-8 text (see module docstring).

        Pipeline: added special tokens; pre-tokenizer Split(pattern, "isolated") then ByteLevel(use_regex=False);
        model BPE(vocab, merges, ignore_merges=False); decoder ByteLevel; with a bos, a post-processor that
        prepends it when add_special_tokens=True.
        """
        from tokenizers import (
            AddedToken,
            Regex,
            Tokenizer,
            decoders,
            models,
            pre_tokenizers,
            processors,
        )

        from workbench.tokenization.hf import bytes_to_unicode

        table = bytes_to_unicode()

        def text(piece: bytes) -> str:
            return "".join(table[b] for b in piece)

        vocab = {text(piece): i for i, piece in enumerate(self._bytes)}
        merges = [(text(self._bytes[a]), text(self._bytes[b])) for a, b in self.merges]
        tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, ignore_merges=False))
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(self.pattern), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False),
        ])
        tok.decoder = decoders.ByteLevel()
        tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in self.special_tokens])
        if self._bos is not None:
            tok.post_processor = processors.TemplateProcessing(
                single=f"{self._bos} $A", pair=f"{self._bos} $A $B", special_tokens=[(self._bos, self.bos_id)]
            )
        return tok

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": "workbench-bpe/1",
            "name": self.name,
            "pattern": self.pattern,
            "special_tokens": list(self.special_tokens),
            "bos": self._bos,
            "eos": self._eos,
            "merges": [list(m) for m in self.merges],
        }

    def save(self, folder: str | Path) -> Path:
        """Write workbench_bpe.json (this format) and tokenizer.json (HF, same ids) into `folder`."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / FORMAT_FILE).write_text(json.dumps(self.to_dict()), encoding="utf-8")
        self.to_hf().save(str(folder / "tokenizer.json"))
        config = {"bos_token": self._bos, "eos_token": self._eos}
        (folder / "tokenizer_config.json").write_text(
            json.dumps({k: v for k, v in config.items() if v is not None}), encoding="utf-8"
        )
        return folder

    @classmethod
    def load(cls, path: str | Path) -> BPETokenizer:
        """From a folder written by `save` (or its workbench_bpe.json)."""
        path = Path(path)
        file = path / FORMAT_FILE if path.is_dir() else path
        if not file.is_file():
            raise ValueError(f"path {str(path)!r} has no {FORMAT_FILE} (write one with BPETokenizer.save)")
        data = json.loads(file.read_text(encoding="utf-8"))
        if data.get("format") != "workbench-bpe/1":
            raise ValueError(f"{str(file)!r} is not a workbench BPE file (format {data.get('format')!r})")
        return cls(
            [tuple(m) for m in data["merges"]],
            pattern=data["pattern"],
            special_tokens=data["special_tokens"],
            bos=data.get("bos"),
            eos=data.get("eos"),
            name=data.get("name", "bpe"),
        )
