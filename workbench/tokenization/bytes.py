"""ByteTokenizer: one token per UTF-8 byte (ids 0..255) plus optional special tokens (ids 256, 257, ...).

The simplest exact tokenizer: token_bytes(b) == bytes([b]), so offsets and round trips are trivially exact.
Tiny seeded test models use it; `to_hf()` gives an equivalent `tokenizers.Tokenizer` for writing an HF folder.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from workbench.tokenization.protocol import InputTypeError, TokenizerBase


class ByteTokenizer(TokenizerBase):
    """256 byte tokens followed by `specials`.

    Special-token strings that occur in the text are encoded as the special token (as HF tokenizers do);
    `add_special_tokens=True` prepends `bos` if one is set.
    """

    def __init__(
        self,
        specials: Sequence[str] = ("<eos>",),
        *,
        bos: str | None = None,
        eos: str | None = "<eos>",
        name: str = "bytes",
    ) -> None:
        """`bos`/`eos` name special tokens among `specials`; the default eos "<eos>" applies only when
        "<eos>" is one of the specials."""
        if isinstance(specials, str):
            raise InputTypeError(f"specials must be a sequence of strings, not a single string {specials!r}")
        specials = list(specials)
        for s in specials:
            if not isinstance(s, str) or not s:
                raise ValueError(f"specials must be non-empty strings, got {s!r}")
        if len(set(specials)) != len(specials):
            raise ValueError(f"specials must be distinct, got {specials}")
        if eos == "<eos>" and eos not in specials:
            eos = None
        for param, value in (("bos", bos), ("eos", eos)):
            if value is not None and value not in specials:
                raise ValueError(f"{param}={value!r} must be one of specials {specials} (or None)")
        self.name = name
        self.specials = specials
        self.vocab_size = 256 + len(specials)
        self._special_to_id = {s: 256 + k for k, s in enumerate(specials)}
        self.special_ids = frozenset(self._special_to_id.values())
        self.bos_id = self._special_to_id[bos] if bos is not None else None
        self.eos_id = self._special_to_id[eos] if eos is not None else None
        ordered = sorted(specials, key=len, reverse=True)  # longest first, so "<eos2>" wins over "<eos>"
        self._split = re.compile("(" + "|".join(map(re.escape, ordered)) + ")") if specials else None

    def _encode(self, text: str, add_special_tokens: bool) -> list[int]:
        ids = [self.bos_id] if add_special_tokens and self.bos_id is not None else []
        if self._split is None:
            return ids + list(text.encode("utf-8"))
        for k, part in enumerate(self._split.split(text)):
            if k % 2:  # odd parts are the captured specials
                ids.append(self._special_to_id[part])
            else:
                ids.extend(part.encode("utf-8"))
        return ids

    def _decode(self, ids: list[int]) -> str:
        return b"".join(self._token_bytes(i) for i in ids).decode("utf-8", errors="replace")

    def _token_bytes(self, token_id: int) -> bytes:
        if token_id < 256:
            return bytes([token_id])
        return self.specials[token_id - 256].encode("utf-8")

    def to_hf(self):
        """An equivalent `tokenizers.Tokenizer` (same ids for every text), e.g. to save as tokenizer.json."""
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers

        from workbench.tokenization.hf import bytes_to_unicode

        table = bytes_to_unicode()
        vocab = {table[b]: b for b in range(256)}
        tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
        tok.decoder = decoders.ByteLevel()
        tok.add_special_tokens(self.specials)
        return tok
