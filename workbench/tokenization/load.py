"""load_tokenizer: one entry point from whatever names a tokenizer to the unified protocol.

Accepted, in the order they are tried:
1. a Tokenizer (returned as is);
2. a backend object: `tokenizers.Tokenizer`, a fast `transformers` tokenizer, `tiktoken.Encoding`,
   `sentencepiece.SentencePieceProcessor`;
3. an existing path: a folder (its workbench_asset.json decides the format; else tokenizer.json -> HF; else a
   single *.model -> SentencePiece), a tokenizer.json file, or a SentencePiece .model file;
4. an asset name ("cl100k", "smollm2-135m", ...; model assets give their tokenizer), fetched if needed;
5. a tiktoken encoding name ("cl100k_base", ...), served from the tokenizer asset that holds it, else from
   tiktoken's own cache; never downloaded by tiktoken.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from workbench.tokenization.hf import HFTokenizer
from workbench.tokenization.protocol import InputTypeError, Tokenizer, TokenizerBase
from workbench.tokenization.sentencepiece_adapter import SentencePieceTokenizer
from workbench.tokenization.tiktoken_adapter import TiktokenTokenizer, encoding_names

TOKENIZER_FORMATS = ("hf", "tiktoken", "sentencepiece")
ACCEPTED = (
    "a Tokenizer, a tokenizers.Tokenizer, a fast transformers tokenizer, a tiktoken.Encoding, a "
    "SentencePieceProcessor, a folder (workbench_asset.json, tokenizer.json or one *.model), a tokenizer.json "
    "or .model file, a tokenizer or model asset name, or a tiktoken encoding name"
)


def load_tokenizer(source: Any) -> Tokenizer:
    """Return the Tokenizer that `source` names (see the module docstring for what is accepted)."""
    if isinstance(source, (TokenizerBase, Tokenizer)):
        return source
    backend = _from_backend_object(source)
    if backend is not None:
        return backend
    if not isinstance(source, (str, os.PathLike)):
        raise InputTypeError(f"source: cannot load a tokenizer from a {type(source).__name__}; expected {ACCEPTED}")
    path = Path(source)
    if path.exists():
        return load_tokenizer_path(path)
    name = str(source)
    assets = _assets()
    if assets is not None:
        try:
            asset = assets.get(name)
        except ValueError:  # UnknownAssetError
            asset = None
        if asset is not None:
            if getattr(asset, "kind", "tokenizer") not in ("tokenizer", "model"):
                raise ValueError(f"source={name!r} is a {asset.kind} asset, not a tokenizer or model")
            return load_tokenizer_path(Path(assets.path(name)), name=name)
    if name in encoding_names():
        return _tiktoken_encoding(name, assets)
    if os.sep in name or "/" in name or name.endswith((".json", ".model")):
        raise ValueError(f"source={name!r}: no such file or folder")
    raise ValueError(f"source={name!r} is not a known tokenizer; expected {ACCEPTED}. {_known_names(assets)}")


def load_tokenizer_path(path: str | Path, *, name: str | None = None) -> Tokenizer:
    """A tokenizer from a folder or a file (see the module docstring)."""
    path = Path(path)
    if path.is_dir():
        meta_file = path / "workbench_asset.json"
        if meta_file.is_file():
            meta = json.loads(meta_file.read_text(encoding="utf-8"))
            kind, fmt = meta.get("kind", "tokenizer"), meta.get("format")
            if kind not in ("tokenizer", "model"):
                raise ValueError(f"folder {str(path)!r} holds a {kind} asset, not a tokenizer or model")
            name = name or meta.get("name") or path.name
            if fmt == "hf":
                return HFTokenizer.from_folder(path, name=name)
            if fmt == "tiktoken":
                tok = TiktokenTokenizer.from_folder(path)
                tok.name = name
                return tok
            if fmt == "sentencepiece":
                return SentencePieceTokenizer.from_folder(path, name=name)
            raise ValueError(
                f"{str(meta_file)!r} has format {fmt!r}; tokenizer formats are {list(TOKENIZER_FORMATS)}"
            )
        if (path / "tokenizer.json").is_file():
            return HFTokenizer.from_folder(path, name=name)
        models = sorted(path.glob("*.model"))
        if len(models) == 1:
            return _model_file(models[0], name or path.name)
        raise ValueError(
            f"folder {str(path)!r} has no workbench_asset.json, no tokenizer.json and "
            f"{'several' if models else 'no'} .model files {[m.name for m in models]}; cannot tell its format"
        )
    if path.is_file():
        if path.suffix == ".json":
            return HFTokenizer.from_file(path, name=name)
        if path.suffix == ".model":
            return _model_file(path, name)
        raise ValueError(f"file {str(path)!r}: expected a tokenizer.json or a SentencePiece .model file")
    raise ValueError(f"path {str(path)!r} does not exist")


def _model_file(path: Path, name: str | None) -> Tokenizer:
    try:
        return SentencePieceTokenizer.from_file(path, name=name)
    except ValueError:
        head = path.read_bytes()[:200].split(b"\n")[0].split(b" ")
        if len(head) == 2 and head[1].isdigit():
            raise ValueError(
                f"{str(path)!r} is a tiktoken BPE file, not SentencePiece: load it with "
                "TiktokenTokenizer.from_bpe_file(path, pat_str=..., special_tokens=...)"
            ) from None
        raise


def _from_backend_object(source: Any) -> Tokenizer | None:
    import sentencepiece
    import tiktoken
    import tokenizers

    if isinstance(source, tokenizers.Tokenizer):
        return HFTokenizer(source)
    if isinstance(source, tiktoken.Encoding):
        return TiktokenTokenizer(source)
    if isinstance(source, sentencepiece.SentencePieceProcessor):
        return SentencePieceTokenizer(source)
    if type(source).__module__.startswith("transformers.") and hasattr(source, "apply_chat_template"):
        return HFTokenizer.from_transformers(source)
    return None


def _assets() -> Any:
    """The workbench.assets module, or None when it cannot be imported."""
    try:
        from workbench import assets
    except ImportError:
        return None
    return assets if hasattr(assets, "get") and hasattr(assets, "path") else None


def _tokenizer_assets(assets: Any) -> list[Any]:
    if assets is None or not hasattr(assets, "list_assets"):
        return []
    return [a for a in assets.list_assets() if getattr(a, "kind", None) in ("tokenizer", "model")]


def _known_names(assets: Any) -> str:
    names = [a.name for a in _tokenizer_assets(assets)]
    if names:
        return f"Known tokenizer/model assets: {names}; tiktoken encodings: {encoding_names()}"
    return f"(no asset registry available) tiktoken encodings: {encoding_names()}"


def _tiktoken_encoding(encoding: str, assets: Any) -> Tokenizer:
    """Encoding `encoding` from the tiktoken-format asset holding it, else from tiktoken's own cache."""
    candidates = [a for a in _tokenizer_assets(assets) if getattr(a, "format", None) == "tiktoken"]
    for asset in candidates:
        if _asset_encoding(asset) == encoding:
            tok = TiktokenTokenizer.from_name(encoding, Path(assets.path(asset.name)))
            tok.name = asset.name
            return tok
    try:
        return TiktokenTokenizer.from_name(encoding)
    except ValueError:
        pass
    raise ValueError(
        f"source={encoding!r}: no tokenizer asset holds this tiktoken encoding and tiktoken's cache does not "
        f"have it (nothing is downloaded at run time); tiktoken assets: {[a.name for a in candidates]}"
    )


def _asset_encoding(asset: Any) -> str | None:
    """The tiktoken encoding an asset holds, from its record (an "encoding" field or entry)."""
    for holder in (asset, getattr(asset, "extra", None), getattr(asset, "meta", None)):
        value = holder.get("encoding") if isinstance(holder, dict) else getattr(holder, "encoding", None)
        if isinstance(value, str):
            return value
    return None
