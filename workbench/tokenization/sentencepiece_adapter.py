"""SentencePieceTokenizer: the protocol over a `sentencepiece.SentencePieceProcessor` (a .model file;
Kudo & Richardson 2018, "SentencePiece: A simple and language independent subword tokenizer").

token_bytes of a piece:
- byte-fallback pieces "<0xNN>" stand for the single byte NN;
- ordinary and user-defined pieces stand for their text with the space marker "▁" (U+2581) read as b" ";
- control pieces (<s>, </s>) and <unk> stand for their piece text; they are `special_ids` and never spell
  input text (SentencePiece does not parse control pieces out of the text: "<s>" in the text is plain text).

The dummy prefix. Most SentencePiece models (add_dummy_prefix, the default) encode "Hello" as if it were
" Hello": the first token is "▁Hello" (or a lone "▁"), one byte longer than the input. Offsets charge that
extra space to nothing: the first token's span is one byte shorter than its token_bytes (so a lone "▁" gets
the empty span (0, 0)), and every later span is shifted left by one byte. With leading spaces in the input,
" Hello" -> "▁▁Hello": the first "▁" is the dummy, the second is the input's space. The spans still tile
text.encode("utf-8") exactly.

Round trips: decode(encode(text)) == text when the model's normalizer is the identity and keeps whitespace
(remove_extra_whitespaces=False), as for Llama-2 and Mistral. Models trained with the default "nmt_nfkc"
normalizer rewrite the text (NFKC, collapsed spaces), so the round trip returns the normalized text; their
offsets come from SentencePiece's own spans, repaired into a tiling (see protocol.assign_offsets). Text
containing "▁" itself decodes with a space there (a SentencePiece limitation). decode drops control tokens,
as SentencePiece does.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from workbench.tokenization.protocol import InputTypeError, TokenizerBase


class SentencePieceTokenizer(TokenizerBase):
    """Wraps a SentencePiece model. `add_special_tokens=True` prepends BOS (the Llama/Mistral convention)."""

    def __init__(self, processor: Any, *, name: str = "sentencepiece") -> None:
        import sentencepiece as spm

        if not isinstance(processor, spm.SentencePieceProcessor):
            raise InputTypeError(f"processor must be a sentencepiece.SentencePieceProcessor, got {type(processor).__name__}")
        self._sp = processor
        self.name = name
        self.vocab_size = processor.get_piece_size()
        self.bos_id = processor.bos_id() if processor.bos_id() >= 0 else None
        self.eos_id = processor.eos_id() if processor.eos_id() >= 0 else None
        self.special_ids = frozenset(
            i for i in range(self.vocab_size) if processor.is_control(i) or processor.is_unknown(i)
        )
        self._table: list[bytes] | None = None

    # --- construction ---
    @classmethod
    def from_file(cls, path: str | Path, *, name: str | None = None) -> SentencePieceTokenizer:
        """From a SentencePiece .model file."""
        import sentencepiece as spm

        path = Path(path)
        if not path.is_file():
            raise ValueError(f"path {str(path)!r} does not exist (expected a SentencePiece .model file)")
        processor = spm.SentencePieceProcessor()
        try:
            processor.Load(model_file=str(path))
        except (OSError, RuntimeError) as err:
            raise ValueError(f"{str(path)!r} is not a SentencePiece model: {err}") from None
        return cls(processor, name=name or path.stem)

    @classmethod
    def from_folder(cls, folder: str | Path, *, name: str | None = None) -> SentencePieceTokenizer:
        """From an asset folder (workbench_asset.json "file" names the model) or a folder with one .model."""
        folder = Path(folder)
        meta_file = folder / "workbench_asset.json"
        if meta_file.is_file():
            meta = json.loads(meta_file.read_text(encoding="utf-8"))
            if not isinstance(meta.get("file"), str):
                raise ValueError(f"{str(meta_file)!r} has no \"file\" field naming the .model file")
            return cls.from_file(folder / meta["file"], name=name or meta.get("name") or folder.name)
        models = sorted(folder.glob("*.model"))
        if len(models) != 1:
            raise ValueError(f"folder {str(folder)!r} must hold exactly one .model file, found {[m.name for m in models]}")
        return cls.from_file(models[0], name=name or folder.name)

    @property
    def backend(self) -> Any:
        """The wrapped `sentencepiece.SentencePieceProcessor`."""
        return self._sp

    # --- protocol ---
    def _encode(self, text: str, add_special_tokens: bool) -> list[int]:
        add_bos = add_special_tokens and self.bos_id is not None
        return self._sp.encode(text, out_type=int, add_bos=add_bos, add_eos=False, enable_sampling=False)

    def _decode(self, ids: list[int]) -> str:
        return self._sp.decode(ids)

    def _token_bytes(self, token_id: int) -> bytes:
        if self._table is None:
            self._table = [self._piece_bytes(i) for i in range(self.vocab_size)]
        return self._table[token_id]

    def _piece_bytes(self, token_id: int) -> bytes:
        piece = self._sp.id_to_piece(token_id)
        if self._sp.is_byte(token_id):
            return bytes([int(piece[3:5], 16)])
        if token_id in self.special_ids:
            return piece.encode("utf-8")
        return piece.replace("\u2581", " ").encode("utf-8")

    def _offset_hints(self, text: str, data: bytes) -> tuple[list[int], Any]:
        # SentencePiece's own byte spans into the input, used only where the pieces do not spell the input.
        mapping = self._sp.encode(
            text, out_type="offset_mapping", return_bytes=True, add_bos=False, add_eos=False, enable_sampling=False
        )
        return list(mapping["ids"]), [tuple(span) for span in mapping["offsets"]]
