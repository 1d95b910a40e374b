"""The ordered merge list (and pre-tokenizer pattern) of a byte-level BPE tokenizer, for data mixture
inference (mixture.py; Hayase et al. 2024, "Data Mixture Inference: What do BPE Tokenizers Reveal about
their Training Data?").

- the project's BPETokenizer stores its merges;
- HF tokenizer.json (Llama-3, Qwen3, GPT-2 style byte-level BPE) lists them in `model.merges`, tokens
  written with GPT-2's byte -> unicode table, and the pre-tokenizer regex in a `Split` step;
- tiktoken stores only ranks (token bytes -> rank). The merge that created the token of rank r is recovered
  the way the paper does: run BPE on the token's bytes using only tokens of rank < r (always merging the
  adjacent pair whose concatenation has the lowest rank); BPE ends with exactly two parts whose
  concatenation is the token, and those two parts are the merge. A token that BPE cannot reach that way
  (it ends in more than two parts) is never produced by encoding, so it has no merge and is skipped.
  A tokenizer.json converted from tiktoken (Llama-3) lists every split of a token whose halves are tokens,
  not just the one BPE uses (280k merges for 128k tokens); when several merges give the same token, the
  merges are recovered from the vocabulary ids as ranks instead.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from workbench.tokenization.protocol import InputTypeError

Merge = tuple[bytes, bytes]


def merges_from_ranks(ranks: Mapping[bytes, int]) -> list[Merge]:
    """Ordered merges (left bytes, right bytes) of a tiktoken-style rank table (see the module docstring)."""
    if not isinstance(ranks, Mapping) or not ranks:
        raise ValueError("ranks must be a non-empty mapping token bytes -> rank")
    out: list[Merge] = []
    for token, rank in sorted(ranks.items(), key=lambda item: item[1]):
        if not isinstance(token, bytes):
            raise InputTypeError(f"ranks keys must be bytes, got {type(token).__name__}")
        if len(token) < 2:
            continue
        parts = [token[i : i + 1] for i in range(len(token))]
        while len(parts) > 2:
            best, pos = rank, -1
            for i in range(len(parts) - 1):
                r = ranks.get(parts[i] + parts[i + 1])
                if r is not None and r < best:
                    best, pos = r, i
            if pos < 0:
                break
            parts[pos : pos + 2] = [parts[pos] + parts[pos + 1]]
        if len(parts) == 2:
            out.append((parts[0], parts[1]))
    return out


def merges_from_hf_json(data: Mapping[str, Any] | str | Path) -> tuple[list[Merge], str]:
    """(ordered merges, pre-tokenizer regex) of a byte-level BPE tokenizer.json (a path, a folder holding one,
    or the parsed JSON)."""
    from workbench.tokenization.hf import bytes_to_unicode

    where = "tokenizer.json"
    if isinstance(data, (str, Path)):
        path = Path(data)
        file = path / "tokenizer.json" if path.is_dir() else path
        if not file.is_file():
            raise ValueError(f"tokenizer={str(path)!r}: no tokenizer.json there")
        where = str(file)
        data = json.loads(file.read_text(encoding="utf-8"))
    model = data.get("model") or {}
    if model.get("type") != "BPE":
        raise ValueError(f"tokenizer: {where} is not a BPE tokenizer (model type {model.get('type')!r})")
    back = {ch: b for b, ch in bytes_to_unicode().items()}

    def raw(s: str) -> bytes:
        try:
            return bytes(back[ch] for ch in s)
        except KeyError:
            raise ValueError(f"tokenizer: {where} is not byte-level (merge token {s!r} is not written with "
                             "GPT-2's byte table)") from None

    merges = []
    for m in model.get("merges", []):
        left, right = m.split(" ", 1) if isinstance(m, str) else m
        merges.append((raw(left), raw(right)))
    pattern = None
    pre = data.get("pre_tokenizer") or {}
    for item in pre.get("pretokenizers", [pre]):
        if item.get("type") == "Split" and "Regex" in (item.get("pattern") or {}):
            pattern = item["pattern"]["Regex"]
            break
    if pattern is None:
        raise ValueError(f"tokenizer: {where} has no Split regex pre-tokenizer to replay the merges with")
    if len({left + right for left, right in merges}) < len(merges):  # converted from tiktoken: every split
        ranks = {}
        for token, rank in model.get("vocab", {}).items():
            if all(ch in back for ch in token):
                ranks[raw(token)] = rank
        merges = merges_from_ranks(ranks)
    return merges, pattern


def merges_of(tokenizer: Any) -> tuple[list[Merge], str]:
    """(ordered merges as byte pairs, pre-tokenizer pattern) of a byte-level BPE tokenizer: the project's
    BPETokenizer, a TiktokenTokenizer or tiktoken.Encoding (merges recovered from the ranks), an HFTokenizer,
    a tokenizer.json path or folder, or anything `load_tokenizer` accepts by name ("cl100k", "llama3",
    "o200k_base", ...)."""
    from workbench.tokenization.bpe import BPETokenizer
    from workbench.tokenization.hf import HFTokenizer
    from workbench.tokenization.load import load_tokenizer
    from workbench.tokenization.tiktoken_adapter import TiktokenTokenizer

    if isinstance(tokenizer, (str, Path)):
        path = Path(tokenizer)
        if path.is_file() or (path.is_dir() and (path / "tokenizer.json").is_file()
                              and not (path / "workbench_asset.json").is_file()):
            return merges_from_hf_json(path)
        try:
            tokenizer = load_tokenizer(tokenizer)
        except ValueError as err:
            raise ValueError(f"tokenizer={str(tokenizer)!r} is not a known tokenizer ({err})") from None
    if isinstance(tokenizer, BPETokenizer):
        return [(tokenizer.token_bytes(a), tokenizer.token_bytes(b)) for a, b in tokenizer.merges], tokenizer.pattern
    if isinstance(tokenizer, TiktokenTokenizer):
        tokenizer = tokenizer.backend
    if type(tokenizer).__name__ == "Encoding" and hasattr(tokenizer, "_mergeable_ranks"):
        return merges_from_ranks(tokenizer._mergeable_ranks), tokenizer._pat_str
    if isinstance(tokenizer, HFTokenizer):
        return merges_from_hf_json(json.loads(tokenizer.backend.to_str()))
    raise ValueError(f"tokenizer must be a byte-level BPE tokenizer (BPETokenizer, tiktoken, HF tokenizer.json "
                     f"or a name load_tokenizer knows), got {type(tokenizer).__name__}")


_UNICODE_FORMS = ("NFC", "NFD", "NFKC", "NFKD")


def unicode_form_of(tokenizer: Any) -> str | None:
    """The Unicode normal form ("NFC", ...) an HF tokenizer.json normalizer applies before pre-tokenization
    (Qwen3: NFC), or None (tiktoken, the project's BPE, no normalizer). Samples replayed for mixture inference
    should be normalised the same way. Other normalizers (lowercasing, replacements) are refused."""
    from workbench.tokenization.hf import HFTokenizer
    from workbench.tokenization.load import load_tokenizer

    if isinstance(tokenizer, (str, Path)):
        path = Path(tokenizer)
        file = path / "tokenizer.json" if path.is_dir() else path
        if file.is_file() and file.suffix == ".json":
            data = json.loads(file.read_text(encoding="utf-8"))
        else:
            try:
                tokenizer = load_tokenizer(tokenizer)
            except ValueError as err:
                raise ValueError(f"tokenizer={str(tokenizer)!r} is not a known tokenizer ({err})") from None
            data = json.loads(tokenizer.backend.to_str()) if isinstance(tokenizer, HFTokenizer) else {}
    elif isinstance(tokenizer, HFTokenizer):
        data = json.loads(tokenizer.backend.to_str())
    elif isinstance(tokenizer, Mapping):
        data = tokenizer
    else:
        data = {}
    norm = data.get("normalizer") or {}
    steps = norm.get("normalizers", [norm]) if norm.get("type") == "Sequence" else [norm] if norm else []
    forms = [s.get("type") for s in steps]
    if any(f not in _UNICODE_FORMS for f in forms) or len(forms) > 1:
        raise ValueError(f"tokenizer: normalizer {forms} is not a single Unicode normal form; replaying its "
                         "merges would need that normalizer")
    return forms[0] if forms else None
