"""TiktokenTokenizer: the protocol over a `tiktoken.Encoding` (OpenAI's byte-level BPE: gpt2, r50k, p50k,
cl100k, o200k).

tiktoken downloads its BPE files on first use. Here they come from a folder instead (an asset of format
"tiktoken": blob files named as tiktoken's cache expects, i.e. the sha1 of the blob URL). The folder is put
in TIKTOKEN_CACHE_DIR only while the encoding loads, and tiktoken's downloader is switched off meanwhile, so a
missing file is a clear error, never a network call.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from workbench.tokenization.protocol import InputTypeError, TokenizerBase

_LOAD_LOCK = threading.Lock()


@contextmanager
def _offline_cache(folder: Path) -> Iterator[None]:
    """TIKTOKEN_CACHE_DIR=folder and no downloads, for the duration of the block."""
    import tiktoken.load

    def refuse(blobpath: str) -> bytes:
        if "://" not in blobpath:  # a local file: reading it is fine
            with open(blobpath, "rb") as f:
                return f.read()
        key = hashlib.sha1(blobpath.encode()).hexdigest()
        raise ValueError(
            f"tiktoken needs {blobpath}, expected offline as file {key} in {str(folder)!r}, which is missing or "
            "has the wrong sha256; fetch the tokenizer asset again (workbench assets fetch NAME --force)"
        )

    with _LOAD_LOCK:
        saved_env, saved_read = os.environ.get("TIKTOKEN_CACHE_DIR"), tiktoken.load.read_file
        os.environ["TIKTOKEN_CACHE_DIR"] = str(folder)
        tiktoken.load.read_file = refuse
        try:
            yield
        finally:
            tiktoken.load.read_file = saved_read
            if saved_env is None:
                os.environ.pop("TIKTOKEN_CACHE_DIR", None)
            else:
                os.environ["TIKTOKEN_CACHE_DIR"] = saved_env


def encoding_names() -> list[str]:
    """The encoding names tiktoken knows ("gpt2", "r50k_base", "cl100k_base", "o200k_base", ...)."""
    import tiktoken

    return sorted(tiktoken.list_encoding_names())


class TiktokenTokenizer(TokenizerBase):
    """Wraps a `tiktoken.Encoding`. Special-token strings in the text are encoded as special tokens (like HF),
    not rejected (tiktoken's own default). `add_special_tokens=True` prepends BOS if there is one (OpenAI
    encodings have none)."""

    def __init__(
        self,
        encoding: Any,
        *,
        name: str | None = None,
        bos_token: str | None = None,
        eos_token: str | None = "<|endoftext|>",
    ) -> None:
        import tiktoken

        if not isinstance(encoding, tiktoken.Encoding):
            raise InputTypeError(f"encoding must be a tiktoken.Encoding, got {type(encoding).__name__}")
        self._enc = encoding
        self.name = name or encoding.name
        self.vocab_size = encoding.n_vocab
        specials = {s: encoding.encode_single_token(s) for s in encoding.special_tokens_set}
        self.special_ids = frozenset(specials.values())
        self.bos_id = self._special(specials, bos_token, "bos_token", required=bos_token is not None)
        self.eos_id = self._special(specials, eos_token, "eos_token", required=False)

    @staticmethod
    def _special(specials: dict[str, int], token: str | None, param: str, required: bool) -> int | None:
        if token is None:
            return None
        if token not in specials:
            if required:
                raise ValueError(f"{param}={token!r} is not a special token of this encoding: {sorted(specials)}")
            return None
        return specials[token]

    # --- construction ---
    @classmethod
    def from_name(cls, encoding_name: str, folder: str | Path | None = None) -> TiktokenTokenizer:
        """Load tiktoken encoding `encoding_name` from `folder` (a TIKTOKEN_CACHE_DIR-style folder); without a
        folder, from tiktoken's own cache, still without any download."""
        import tiktoken

        names = encoding_names()
        if encoding_name not in names:
            raise ValueError(f"encoding_name={encoding_name!r} is not a tiktoken encoding; known: {names}")
        if folder is None:
            folder = os.environ.get("TIKTOKEN_CACHE_DIR") or os.path.join(tempfile.gettempdir(), "data-gym-cache")
        folder = Path(folder)
        if not folder.is_dir():
            raise ValueError(f"folder {str(folder)!r} does not exist (expected the tiktoken files of {encoding_name})")
        with _offline_cache(folder):
            encoding = tiktoken.get_encoding(encoding_name)
        return cls(encoding)

    @classmethod
    def from_folder(cls, folder: str | Path) -> TiktokenTokenizer:
        """From a tokenizer asset folder of format "tiktoken" (workbench_asset.json names the encoding)."""
        folder = Path(folder)
        meta_file = folder / "workbench_asset.json"
        if not meta_file.is_file():
            raise ValueError(f"folder {str(folder)!r} has no workbench_asset.json naming its tiktoken encoding")
        meta = json.loads(meta_file.read_text(encoding="utf-8"))
        if not isinstance(meta.get("encoding"), str):
            raise ValueError(f"{str(meta_file)!r} has no \"encoding\" field (e.g. \"cl100k_base\")")
        tok = cls.from_name(meta["encoding"], folder)
        tok.name = meta.get("name") or tok.name
        return tok

    @classmethod
    def from_bpe_file(
        cls,
        path: str | Path,
        pat_str: str,
        special_tokens: dict[str, int] | None = None,
        *,
        name: str | None = None,
        bos_token: str | None = None,
        eos_token: str | None = None,
    ) -> TiktokenTokenizer:
        """From a local tiktoken BPE file (lines "base64(token) rank", e.g. Llama-3's tokenizer.model) plus the
        pre-tokenization regex `pat_str` and the special tokens."""
        import tiktoken
        from tiktoken.load import load_tiktoken_bpe

        path = Path(path)
        if not path.is_file():
            raise ValueError(f"path {str(path)!r} does not exist (expected a tiktoken BPE file)")
        try:
            ranks = load_tiktoken_bpe(str(path))
        except (ValueError, IndexError, OSError) as err:
            raise ValueError(f"{str(path)!r} is not a tiktoken BPE file (lines 'base64 rank'): {err}") from None
        encoding = tiktoken.Encoding(
            name=name or path.stem, pat_str=pat_str, mergeable_ranks=ranks, special_tokens=special_tokens or {}
        )
        return cls(encoding, bos_token=bos_token, eos_token=eos_token)

    @property
    def backend(self) -> Any:
        """The wrapped `tiktoken.Encoding`."""
        return self._enc

    # --- protocol ---
    def _encode(self, text: str, add_special_tokens: bool) -> list[int]:
        ids = self._enc.encode(text, allowed_special="all")
        return [self.bos_id] + ids if add_special_tokens and self.bos_id is not None else ids

    def _decode(self, ids: list[int]) -> str:
        return b"".join(self._token_bytes(i) for i in ids).decode("utf-8", errors="replace")

    def _token_bytes(self, token_id: int) -> bytes:
        try:
            return self._enc.decode_single_token_bytes(token_id)
        except KeyError:
            raise ValueError(f"token_id {token_id} is unused in {self.name!r} (a hole in its vocabulary)") from None
