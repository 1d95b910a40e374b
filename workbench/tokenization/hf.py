"""HFTokenizer: the protocol over a Hugging Face `tokenizers.Tokenizer` (tokenizer.json), with chat templates
from the `transformers` tokenizer of the same folder.

token_bytes is read off the vocabulary according to the tokenizer's decoder:
- byte-level BPE (GPT-2, Llama-3, Qwen, SmolLM): each character of a token stands for one byte through GPT-2's
  byte-to-unicode table (Radford et al. 2019, "Language Models are Unsupervised Multitask Learners");
- SentencePiece-style (Llama-2, Mistral, Gemma): "▁" stands for a space and "<0xNN>" byte-fallback tokens for
  the byte NN;
- otherwise the token's text in UTF-8.
Added tokens stand for their literal text (specials such as "<|im_start|>"; non-special added tokens of a
SentencePiece-style tokenizer, like Gemma's "▁▁" whitespace runs, with "▁" read as a space, as its decoder does).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from workbench.tokenization.protocol import InputTypeError, TokenizerBase

_BOS_NAMES = ("<s>", "<|begin_of_text|>", "<bos>", "<|startoftext|>")
_EOS_NAMES = ("</s>", "<|endoftext|>", "<|end_of_text|>", "<eos>")


@lru_cache(maxsize=1)
def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable character table used by byte-level BPE vocabularies.

    Printable Latin-1 bytes map to themselves; the other 68 bytes (controls, space, DEL, NBSP, soft hyphen)
    map, in byte order, to U+0100, U+0101, ...
    """
    keep = set(range(ord("!"), ord("~") + 1)) | set(range(0xA1, 0xAC + 1)) | set(range(0xAE, 0xFF + 1))
    table, extra = {}, 0
    for b in range(256):
        if b in keep:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    return table


def _component_parts(component: Any) -> list[dict[str, Any]]:
    """A tokenizers pipeline component (decoder, pre-tokenizer) as a flat list of its JSON parts."""
    if component is None:
        return []
    parts, todo = [], [json.loads(component.__getstate__())]
    while todo:
        part = todo.pop(0)
        nested = part.get("decoders") or part.get("pretokenizers")
        if part.get("type") == "Sequence" and isinstance(nested, list):
            todo[:0] = nested
        else:
            parts.append(part)
    return parts


def _special_text(value: Any) -> str | None:
    """A special token as written in tokenizer_config.json: a string or {"content": ...}."""
    if isinstance(value, dict):
        value = value.get("content")
    return value if isinstance(value, str) else None


class HFTokenizer(TokenizerBase):
    """Wraps `tokenizers.Tokenizer`; `transformers_tokenizer` (or `folder`, loaded lazily) serves chat templates.

    Special-token strings in the text are encoded as special tokens (HF's default).
    """

    def __init__(
        self,
        tokenizer: Any,
        *,
        name: str = "hf",
        bos_token: str | None = None,
        eos_token: str | None = None,
        transformers_tokenizer: Any = None,
        folder: str | Path | None = None,
    ) -> None:
        from tokenizers import Tokenizer as HFBackend

        if not isinstance(tokenizer, HFBackend):
            raise InputTypeError(f"tokenizer must be a tokenizers.Tokenizer, got {type(tokenizer).__name__}")
        if tokenizer.truncation is not None or tokenizer.padding is not None:
            tokenizer = HFBackend.from_str(tokenizer.to_str())  # a copy: leave the caller's object alone
            tokenizer.no_truncation()
            tokenizer.no_padding()
        self._tok = tokenizer
        self._hf = transformers_tokenizer
        self._folder = Path(folder) if folder is not None else None
        self.name = name

        vocab = tokenizer.get_vocab(with_added_tokens=True)
        self.vocab_size = max(vocab.values()) + 1 if vocab else 0
        added = tokenizer.get_added_tokens_decoder()
        self._added = {i: t.content for i, t in added.items()}
        self.special_ids = frozenset(i for i, t in added.items() if t.special)

        decoder = _component_parts(tokenizer.decoder)
        types = {part.get("type") for part in decoder}
        if not decoder:
            types = {part.get("type") for part in _component_parts(tokenizer.pre_tokenizer)}
        self.byte_level = "ByteLevel" in types
        self._metaspace = "Metaspace" in types or any(
            part.get("type") == "Replace" and part.get("pattern") == {"String": "\u2581"} for part in decoder
        )
        self._byte_fallback = "ByteFallback" in types or bool(getattr(tokenizer.model, "byte_fallback", False))
        self._table: list[bytes | None] | None = None

        self.bos_id = self._id_of(bos_token, "bos_token", _BOS_NAMES)
        self.eos_id = self._id_of(eos_token, "eos_token", _EOS_NAMES)

    def _id_of(self, token: str | None, param: str, fallbacks: Sequence[str]) -> int | None:
        if token is not None:
            token_id = self._tok.token_to_id(token)
            if token_id is None:
                raise ValueError(f"{param}={token!r} is not in the vocabulary of {self.name!r}")
            return token_id
        for candidate in fallbacks:  # no config: a conventional name among the special tokens
            token_id = self._tok.token_to_id(candidate)
            if token_id is not None and token_id in self.special_ids:
                return token_id
        return None

    # --- construction ---
    @classmethod
    def from_file(cls, path: str | Path, *, name: str | None = None) -> HFTokenizer:
        """From a tokenizer.json; a tokenizer_config.json beside it supplies BOS/EOS and the chat template."""
        path = Path(path)
        if path.is_dir():
            return cls.from_folder(path, name=name)
        if not path.is_file():
            raise ValueError(f"path {str(path)!r} does not exist (expected a tokenizer.json file or its folder)")
        from tokenizers import Tokenizer as HFBackend

        try:
            backend = HFBackend.from_file(str(path))
        except Exception as err:  # noqa: BLE001 (the Rust side raises plain Exception on malformed files)
            raise ValueError(f"{str(path)!r} is not a valid HF tokenizer.json: {err}") from None
        config = _read_config(path.parent / "tokenizer_config.json")
        has_chat = "chat_template" in config or any(
            (path.parent / f).is_file() for f in ("chat_template.jinja", "chat_template.json")
        )
        return cls(
            backend,
            name=name or path.parent.name or path.stem,
            bos_token=_special_text(config.get("bos_token")),
            eos_token=_special_text(config.get("eos_token")),
            folder=path.parent if has_chat else None,
        )

    @classmethod
    def from_folder(cls, folder: str | Path, *, name: str | None = None) -> HFTokenizer:
        """From an HF folder holding tokenizer.json (+ tokenizer_config.json / chat_template.jinja)."""
        folder = Path(folder)
        file = folder / "tokenizer.json"
        if not file.is_file():
            raise ValueError(f"folder {str(folder)!r} has no tokenizer.json")
        return cls.from_file(file, name=name or folder.name)

    @classmethod
    def from_transformers(cls, tokenizer: Any, *, name: str | None = None) -> HFTokenizer:
        """From a `transformers` tokenizer backed by `tokenizers` (a "fast" tokenizer)."""
        backend = getattr(tokenizer, "backend_tokenizer", None)
        if backend is None:
            raise ValueError(
                f"tokenizer {type(tokenizer).__name__} has no tokenizers backend; pass a fast (tokenizers-backed) "
                "transformers tokenizer, or load the folder's tokenizer.json"
            )
        return cls(
            backend,
            name=name or getattr(tokenizer, "name_or_path", "") or type(tokenizer).__name__,
            bos_token=tokenizer.bos_token,
            eos_token=tokenizer.eos_token,
            transformers_tokenizer=tokenizer,
        )

    @property
    def backend(self) -> Any:
        """The wrapped `tokenizers.Tokenizer`."""
        return self._tok

    # --- protocol ---
    def _encode(self, text: str, add_special_tokens: bool) -> list[int]:
        return self._tok.encode(text, add_special_tokens=add_special_tokens).ids

    def _decode(self, ids: list[int]) -> str:
        return self._tok.decode(ids, skip_special_tokens=False)

    def _token_bytes(self, token_id: int) -> bytes:
        if self._table is None:
            self._table = self._build_table()
        piece = self._table[token_id]
        if piece is None:
            raise ValueError(f"token_id {token_id} is unused in {self.name!r} (a hole in its vocabulary)")
        return piece

    def _build_table(self) -> list[bytes | None]:
        table: list[bytes | None] = [None] * self.vocab_size
        if self.byte_level:
            inverse = {c: b for b, c in bytes_to_unicode().items()}
        for token, token_id in self._tok.get_vocab(with_added_tokens=False).items():
            if self.byte_level:
                try:
                    table[token_id] = bytes(inverse[c] for c in token)
                except KeyError:  # not a byte-level string (e.g. a special stored in the model vocab)
                    table[token_id] = token.encode("utf-8")
            elif self._byte_fallback and _is_byte_token(token):
                table[token_id] = bytes([int(token[3:5], 16)])
            elif self._metaspace:
                table[token_id] = token.replace("\u2581", " ").encode("utf-8")
            else:
                table[token_id] = token.encode("utf-8")
        for token_id, content in self._added.items():
            if self._byte_fallback and _is_byte_token(content):  # ByteFallback decodes these even when added
                table[token_id] = bytes([int(content[3:5], 16)])
            elif self._metaspace and token_id not in self.special_ids:  # e.g. Gemma's "▁▁" whitespace runs
                table[token_id] = content.replace("\u2581", " ").encode("utf-8")
            else:
                table[token_id] = content.encode("utf-8")
        return table

    def _offset_hints(self, text: str, data: bytes) -> tuple[list[int], Any]:
        encoding = self._tok.encode(text, add_special_tokens=False)

        def hints() -> list[tuple[int, int]]:  # HF gives character offsets into the original text
            if len(data) == len(text):
                return list(encoding.offsets)
            starts = [0]
            for ch in text:
                starts.append(starts[-1] + len(ch.encode("utf-8")))
            return [(starts[s], starts[e]) for s, e in encoding.offsets]

        return encoding.ids, hints

    # --- chat ---
    @property
    def has_chat_template(self) -> bool:
        if self._hf is not None:
            return getattr(self._hf, "chat_template", None) is not None
        return self._folder is not None

    def _transformers(self) -> Any:
        if self._hf is None and self._folder is not None:
            from transformers import AutoTokenizer

            self._hf = AutoTokenizer.from_pretrained(str(self._folder), local_files_only=True)
        return self._hf

    def chat_text(self, messages: list[dict[str, Any]], add_generation_prompt: bool = True, **kwargs: Any) -> str:
        """The chat template rendered as text (what `apply_chat_template` tokenizes)."""
        if not self.has_chat_template:
            return super().apply_chat_template(messages)  # raises NotImplementedError
        if not isinstance(messages, list) or not all(isinstance(m, dict) and "role" in m for m in messages):
            raise ValueError("messages must be a list of dicts with 'role' and 'content', e.g. "
                             "[{'role': 'user', 'content': 'Hi'}]")
        return self._transformers().apply_chat_template(
            messages, tokenize=False, add_generation_prompt=add_generation_prompt, **kwargs
        )

    def apply_chat_template(
        self, messages: list[dict[str, Any]], add_generation_prompt: bool = True, **kwargs: Any
    ) -> list[int]:
        """Token ids of the chat rendered by the tokenizer's template.

        `add_generation_prompt` defaults to True (unlike transformers) because the workbench uses the result
        as a prompt to generate from; extra keyword arguments go to the template.
        """
        return self._encode(self.chat_text(messages, add_generation_prompt, **kwargs), False)


def _is_byte_token(token: str) -> bool:
    """A byte-fallback token "<0xNN>"."""
    return len(token) == 6 and token.startswith("<0x") and token.endswith(">") and all(
        c in "0123456789ABCDEFabcdef" for c in token[3:5]
    )


def _read_config(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{str(path)!r} is not valid JSON: {err}") from None
    return config if isinstance(config, dict) else {}
