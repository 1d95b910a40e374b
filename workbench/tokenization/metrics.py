"""Tokenizer metrics. Each is a function of (tokenizer, texts) returning a tidy pandas DataFrame in long
format: one row per (tokenizer, metric[, key]) with a `value` column (pivot for a wide table).

Definitions (logs in bits; texts are encoded one by one, without added special tokens; n-grams never cross
text boundaries; "words" are maximal runs of characters that are not Unicode White_Space):

- compression: bytes/token (UTF-8 bytes), characters/token, and the totals.
- fertility: mean number of tokens per word, where a token counts for a word when its byte span overlaps the
  word's (whitespace-only tokens count for no word; a token spanning two words counts for both); continued
  words: the fraction of words overlapped by more than one token (Rust et al. 2021, "How Good is Your
  Tokenizer?").
- vocabulary utilisation: distinct token ids used in the corpus / vocab_size.
- entropy of the unigram token distribution p: Shannon H = -sum p log p; Renyi H_a = log(sum p^a) / (1 - a)
  (a = 1 is Shannon); efficiency = H / log(vocab_size) (Zouhar et al. 2023, "Tokenization and the Noiseless
  Channel", who find Renyi efficiency with a = 2.5 predicts downstream quality best).
- conditional entropy of order k: H(X_t | X_{t-k} .. X_{t-1}), the plug-in estimate H((k+1)-grams) minus
  H(their k-token contexts), both from the (k+1)-gram counts (Erdogan et al. 2026, "An Information-Theoretic
  Perspective on LLM Tokenizers"); order 0 is the unigram entropy.
- token premium on aligned text: tokens of a language's segments / tokens of the reference language's same
  segments, over the corpus and averaged per segment (Arnett et al. 2025, "Explaining and Mitigating
  Crosslingual Tokenizer Inequities"; Petrov et al. 2023 for the term). `udhr_aligned` gives aligned UDHR
  articles.
- script coverage of the vocabulary: per Unicode script, the number and fraction of vocabulary tokens in it
  (Qtok, Chelombitko et al. 2024; see scripts.py for how a token gets a script).
- digit grouping and number segmentation (numbers.py): how a tokenizer cuts digit runs (consistent with
  left-to-right or right-to-left groups of 3; Singh & Strouse 2024), and what the grouping / triadic suffix
  transforms do to its tokens.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import regex

from workbench.tokenization.numbers import (
    TriadicMarkers,
    group_digits,
    triadic_decode,
    triadic_encode,
    ungroup_digits,
)
from workbench.tokenization.protocol import (
    InputTypeError,
    Offsets,
    Tokenizer,
    check_text,
)
from workbench.tokenization.scripts import token_script

COLUMNS = ["tokenizer", "metric", "value"]
_WORD_TEXT = regex.compile(r"\S+")
_DIGITS = regex.compile(rb"[0-9]+")


# --- inputs -------------------------------------------------------------------------------------------------
def _tokenizer(tokenizer: Any) -> Tokenizer:
    from workbench.tokenization.load import load_tokenizer

    return load_tokenizer(tokenizer)


def _texts(texts: Iterable[str] | str, param: str = "texts") -> list[str]:
    if isinstance(texts, str):
        texts = [texts]
    if isinstance(texts, (bytes, bytearray)) or not isinstance(texts, Iterable):
        raise InputTypeError(f"{param} must be a str or an iterable of str, got {type(texts).__name__}")
    out = list(texts)
    for k, text in enumerate(out):
        check_text(text, f"{param}[{k}]")
    if not any(out):
        raise ValueError(f"{param} is empty: give at least one non-empty text")
    return out


@dataclass
class EncodedCorpus:
    """A corpus encoded once (ids and byte offsets per text), shared by several metrics."""

    tokenizer: Tokenizer
    texts: list[str]
    ids: list[list[int]]
    offsets: list[Offsets] | None

    @classmethod
    def encode(cls, tokenizer: Any, texts: Iterable[str] | str, offsets: bool = False) -> EncodedCorpus:
        tok = _tokenizer(tokenizer)
        texts = _texts(texts)
        if offsets:
            pairs = [tok.encode_with_offsets(t) for t in texts]
            return cls(tok, texts, [p[0] for p in pairs], [p[1] for p in pairs])
        return cls(tok, texts, [tok.encode(t) for t in texts], None)

    @property
    def name(self) -> str:
        return self.tokenizer.name

    def unigram_counts(self) -> Counter[int]:
        counts: Counter[int] = Counter()
        for ids in self.ids:
            counts.update(ids)
        return counts


def _frame(name: str, values: Mapping[str, float], **keys: Any) -> pd.DataFrame:
    rows = [{"tokenizer": name, **keys, "metric": m, "value": float(v)} for m, v in values.items()]
    return pd.DataFrame(rows, columns=["tokenizer", *keys, "metric", "value"])


# --- compression and words ----------------------------------------------------------------------------------
def _compression(enc: EncodedCorpus) -> pd.DataFrame:
    tokens = sum(map(len, enc.ids))
    n_bytes = sum(len(t.encode("utf-8")) for t in enc.texts)
    chars = sum(map(len, enc.texts))
    return _frame(enc.name, {
        "bytes_per_token": n_bytes / tokens if tokens else math.nan,
        "chars_per_token": chars / tokens if tokens else math.nan,
        "tokens": tokens, "bytes": n_bytes, "chars": chars,
    })


def compression(tokenizer: Any, texts: Iterable[str] | str) -> pd.DataFrame:
    """bytes_per_token, chars_per_token, tokens, bytes, chars."""
    return _compression(EncodedCorpus.encode(tokenizer, texts))


def word_spans(text: str) -> list[tuple[int, int]]:
    """Byte spans of the words of `text`: maximal runs of characters that are not Unicode White_Space."""
    if text.isascii():
        return [m.span() for m in _WORD_TEXT.finditer(text)]
    cps = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
    widths = 1 + (cps >= 0x80) + (cps >= 0x800) + (cps >= 0x10000)
    starts = np.concatenate([[0], np.cumsum(widths)])
    return [(int(starts[m.start()]), int(starts[m.end()])) for m in _WORD_TEXT.finditer(text)]


def tokens_per_word(offsets: Offsets, words: Sequence[tuple[int, int]]) -> list[int]:
    """For each word span, the number of non-empty token spans overlapping it (two-pointer sweep)."""
    spans = [(s, e) for s, e in offsets if e > s]
    out, first = [], 0
    for ws, we in words:
        while first < len(spans) and spans[first][1] <= ws:
            first += 1
        k = first
        while k < len(spans) and spans[k][0] < we:
            k += 1
        out.append(k - first)
    return out


def _fertility(enc: EncodedCorpus) -> pd.DataFrame:
    per_word: list[int] = []
    for text, offsets in zip(enc.texts, enc.offsets, strict=True):
        per_word += tokens_per_word(offsets, word_spans(text))
    words = len(per_word)
    return _frame(enc.name, {
        "fertility": sum(per_word) / words if words else math.nan,
        "continued_words": sum(n > 1 for n in per_word) / words if words else math.nan,
        "words": words,
    })


def fertility(tokenizer: Any, texts: Iterable[str] | str) -> pd.DataFrame:
    """fertility (tokens per word), continued_words (fraction of words split into > 1 token), words."""
    return _fertility(EncodedCorpus.encode(tokenizer, texts, offsets=True))


def _utilisation(enc: EncodedCorpus) -> pd.DataFrame:
    used = len(enc.unigram_counts())
    return _frame(enc.name, {"vocab_used": used, "vocab_utilisation": used / enc.tokenizer.vocab_size})


def vocabulary_utilisation(tokenizer: Any, texts: Iterable[str] | str) -> pd.DataFrame:
    """vocab_used (distinct ids in the corpus) and vocab_utilisation (that / vocab_size)."""
    return _utilisation(EncodedCorpus.encode(tokenizer, texts))


# --- entropies ----------------------------------------------------------------------------------------------
def shannon_entropy(counts: Iterable[int]) -> float:
    """Plug-in Shannon entropy in bits of the distribution given by `counts`."""
    c = np.asarray([x for x in counts if x > 0], dtype=np.float64)
    if c.size == 0:
        return math.nan
    p = c / c.sum()
    return float(-(p * np.log2(p)).sum())


def renyi_entropy(counts: Iterable[int], alpha: float) -> float:
    """Renyi entropy of order `alpha` in bits (alpha = 1: Shannon; alpha = 0: log of the support size)."""
    _check_alpha(alpha)
    if alpha == 1:
        return shannon_entropy(counts)
    c = np.asarray([x for x in counts if x > 0], dtype=np.float64)
    if c.size == 0:
        return math.nan
    p = c / c.sum()
    return float(np.log2(np.sum(p**alpha)) / (1 - alpha))


def _check_alpha(alpha: object) -> None:
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not math.isfinite(alpha) or alpha < 0:
        raise ValueError(f"alpha must be a finite number >= 0, got {alpha!r}")


def _entropy(enc: EncodedCorpus, alpha: float) -> pd.DataFrame:
    counts = list(enc.unigram_counts().values())
    h, h_a = shannon_entropy(counts), renyi_entropy(counts, alpha)
    log_v = math.log2(enc.tokenizer.vocab_size)
    return pd.concat([
        _frame(enc.name, {"shannon_entropy": h, "shannon_efficiency": h / log_v}),
        _frame(enc.name, {"renyi_entropy": h_a, "renyi_efficiency": h_a / log_v}, alpha=float(alpha)),
    ], ignore_index=True)[["tokenizer", "metric", "alpha", "value"]]


def entropy(tokenizer: Any, texts: Iterable[str] | str, alpha: float = 2.5) -> pd.DataFrame:
    """Shannon and Renyi (order `alpha`) entropy of the unigram distribution, and their efficiencies."""
    _check_alpha(alpha)
    return _entropy(EncodedCorpus.encode(tokenizer, texts), alpha)


def conditional_entropy_of(sequences: Iterable[Sequence[int]], order: int) -> float:
    """Plug-in H(X_t | previous `order` tokens) in bits over the (order+1)-grams inside each sequence."""
    joint: Counter[tuple[int, ...]] = Counter()
    for seq in sequences:
        seq = list(seq)
        joint.update(tuple(seq[i : i + order + 1]) for i in range(len(seq) - order))
    if not joint:
        return math.nan
    if order == 0:
        return shannon_entropy(joint.values())
    context: Counter[tuple[int, ...]] = Counter()
    for gram, n in joint.items():
        context[gram[:-1]] += n
    return shannon_entropy(joint.values()) - shannon_entropy(context.values())


def _check_orders(orders: Sequence[int]) -> list[int]:
    orders = list(orders)
    if not orders or any(isinstance(k, bool) or not isinstance(k, int) or k < 0 for k in orders):
        raise ValueError(f"orders must be a non-empty sequence of ints >= 0, got {orders!r}")
    return orders


def _conditional(enc: EncodedCorpus, orders: Sequence[int]) -> pd.DataFrame:
    return pd.concat([_frame(enc.name, {"conditional_entropy": conditional_entropy_of(enc.ids, k)}, order=k)
                      for k in orders], ignore_index=True)


def conditional_entropy(tokenizer: Any, texts: Iterable[str] | str, orders: Sequence[int] = (1, 2, 3)) -> pd.DataFrame:
    """Conditional entropy of the next token given the previous k tokens, for each k in `orders`."""
    return _conditional(EncodedCorpus.encode(tokenizer, texts), _check_orders(orders))


# --- across languages ---------------------------------------------------------------------------------------
def token_premium(tokenizer: Any, aligned: Mapping[str, Sequence[str]], reference: str = "eng") -> pd.DataFrame:
    """Per language: tokens, premium (its total tokens / the reference language's) and mean_segment_premium
    (mean over segments of the per-segment ratio; segments where the reference has no token are skipped).

    `aligned` maps a language to its segments; segment i of every language translates the same source.
    """
    if not isinstance(aligned, Mapping) or not aligned:
        raise ValueError("aligned must be a non-empty mapping language -> list of aligned segments")
    if reference not in aligned:
        raise ValueError(f"reference={reference!r} is not among the aligned languages {sorted(aligned)}")
    sizes = {lang: len(segments) for lang, segments in aligned.items()}
    if len(set(sizes.values())) != 1:
        raise ValueError(f"aligned corpora have different numbers of segments {sizes}; aligned text needs the "
                         "same segments in every language")
    tok = _tokenizer(tokenizer)
    counts = {lang: [len(tok.encode(s)) for s in _texts(segments, f"aligned[{lang!r}]")]
              for lang, segments in aligned.items()}
    ref = counts[reference]
    frames = []
    for lang, c in counts.items():
        ratios = [a / b for a, b in zip(c, ref, strict=True) if b > 0]
        frames.append(_frame(tok.name, {
            "tokens": sum(c),
            "premium": sum(c) / sum(ref),
            "mean_segment_premium": float(np.mean(ratios)) if ratios else math.nan,
        }, language=lang))
    return pd.concat(frames, ignore_index=True)


def udhr_aligned(codes: Sequence[str] = ("eng", "fra", "spa", "deu_1996", "rus", "arb", "hin", "cmn_hans", "jpn",
                                         "swh"),
                 articles: Sequence[int] | None = None, heading: bool = True) -> dict[str, list[str]]:
    """UDHR versions by udhr code (e.g. "eng", "cmn_hans"): code -> article texts, aligned by article number
    over the articles present in every chosen version (or `articles`). With `heading`, each segment is the
    article heading, a newline, then its text."""
    from workbench.assets import load_corpus

    codes = list(codes)
    frame = load_corpus("udhr", languages=codes).to_pandas()
    frame = frame[frame["code"].isin(codes)]
    missing = [c for c in codes if c not in set(frame["code"])]
    if missing:
        raise ValueError(f"codes {missing} are not udhr version codes (e.g. 'eng', 'fra', 'cmn_hans')")
    common = set.intersection(*(set(frame.loc[frame["code"] == c, "article"]) for c in codes))
    if articles is not None:
        common &= set(articles)
    keep = sorted(common)
    out = {}
    for code in codes:
        rows = frame[frame["code"] == code].set_index("article")
        out[code] = [(f"{rows.at[a, 'heading']}\n" if heading and rows.at[a, "heading"] else "") + rows.at[a, "text"]
                     for a in keep]
    return out


# --- vocabulary scripts -------------------------------------------------------------------------------------
def script_coverage(tokenizer: Any) -> pd.DataFrame:
    """Per script class (scripts.py): `tokens` and `fraction` of the vocabulary (specials and holes excluded)."""
    tok = _tokenizer(tokenizer)
    counts: Counter[str] = Counter()
    for i in range(tok.vocab_size):
        if i in tok.special_ids:
            continue
        try:
            piece = tok.token_bytes(i)
        except ValueError:  # a hole in the vocabulary
            continue
        counts[token_script(piece)] += 1
    total = sum(counts.values())
    frames = [_frame(tok.name, {"tokens": n, "fraction": n / total}, script=s) for s, n in counts.most_common()]
    return pd.concat(frames, ignore_index=True)


# --- numbers ------------------------------------------------------------------------------------------------
def _cuts(offsets: Offsets) -> set[int]:
    return {s for s, e in offsets if e > s}


def digit_grouping(tokenizer: Any, texts: Iterable[str] | str, size: int = 3) -> pd.DataFrame:
    """How the tokenizer cuts digit runs longer than `size`: the fraction of runs whose token boundaries
    inside the run are exactly those of left-to-right groups of `size` (l2r), of right-to-left groups (r2l)
    (a run whose length is a multiple of `size` counts for both), or neither; and their number."""
    enc = EncodedCorpus.encode(tokenizer, texts, offsets=True)
    tally = Counter()
    for text, offsets in zip(enc.texts, enc.offsets, strict=True):
        cuts = _cuts(offsets)
        for m in _DIGITS.finditer(text.encode("utf-8")):
            s, e = m.span()
            if e - s <= size:
                continue
            inside = {c for c in cuts if s < c < e}
            l2r = set(range(s + size, e, size))
            r2l = set(range(e - size, s, -size))
            tally["numbers"] += 1
            tally["l2r"] += inside == l2r
            tally["r2l"] += inside == r2l
            tally["neither"] += inside not in (l2r, r2l)
    n = tally["numbers"]
    return _frame(enc.name, {
        "numbers": n,
        "fraction_l2r": tally["l2r"] / n if n else math.nan,
        "fraction_r2l": tally["r2l"] / n if n else math.nan,
        "fraction_neither": tally["neither"] / n if n else math.nan,
    }, size=size)


def _group_stats(tok: Tokenizer, text: str) -> tuple[int, int, int, int]:
    """(tokens, digit groups, groups that are exactly one token, groups sharing a token with another group)."""
    ids, offsets = tok.encode_with_offsets(text)
    data = text.encode("utf-8")
    groups = [m.span() for m in _DIGITS.finditer(data)]
    spans = [(s, e) for s, e in offsets if e > s]
    single = crossed = 0
    first = 0
    for gi, (gs, ge) in enumerate(groups):
        while first < len(spans) and spans[first][1] <= gs:
            first += 1
        k = first
        while k < len(spans) and spans[k][0] < ge:
            k += 1
        covering = spans[first:k]
        if not covering:  # the backend dropped these bytes (a normalizing tokenizer)
            continue
        single += len(covering) == 1 and covering[0] == (gs, ge)
        lo, hi = covering[0][0], covering[-1][1]
        touches_prev = gi > 0 and groups[gi - 1][1] > lo
        touches_next = gi + 1 < len(groups) and groups[gi + 1][0] < hi
        crossed += touches_prev or touches_next
    return len(ids), len(groups), single, crossed


def _transform(scheme: str, text: str, separator: str, markers: TriadicMarkers | None) -> str:
    if scheme == "triadic":
        return triadic_encode(text, markers)
    if scheme in ("l2r", "r2l"):
        return group_digits(text, scheme, separator=separator)
    return text


def _undo(scheme: str, text: str, separator: str, markers: TriadicMarkers | None) -> str:
    if scheme == "triadic":
        return triadic_decode(text, markers)
    if scheme in ("l2r", "r2l"):
        return ungroup_digits(text, separator=separator)
    return text


def number_segmentation(tokenizer: Any, texts: Iterable[str] | str,
                        schemes: Sequence[str] = ("original", "l2r", "r2l", "triadic"),
                        separator: str = ",", markers: TriadicMarkers | None = None) -> pd.DataFrame:
    """For each number scheme (numbers.py): the text is transformed ("original": unchanged; "l2r"/"r2l":
    `group_digits` with `separator`; "triadic": `triadic_encode`), tokenized, and checked: tokens (total),
    digit_groups (digit runs of the transformed text), single_token_groups (fraction that are exactly one
    token), crossed_groups (fraction sharing a token with a neighbouring group), roundtrip (1.0 when
    decoding the ids and undoing the transform gives every text back)."""
    allowed = ("original", "l2r", "r2l", "triadic")
    bad = [s for s in schemes if s not in allowed]
    if bad or not schemes:
        raise ValueError(f"schemes must be a non-empty subset of {list(allowed)}, got {list(schemes)}")
    tok = _tokenizer(tokenizer)
    texts = _texts(texts)
    frames = []
    for scheme in schemes:
        totals = np.zeros(4, dtype=np.int64)
        roundtrip = True
        for text in texts:
            transformed = _transform(scheme, text, separator, markers)
            totals += _group_stats(tok, transformed)
            roundtrip &= _undo(scheme, tok.decode(tok.encode(transformed)), separator, markers) == text
        tokens, groups, single, crossed = totals.tolist()
        frames.append(_frame(tok.name, {
            "tokens": tokens, "digit_groups": groups,
            "single_token_groups": single / groups if groups else math.nan,
            "crossed_groups": crossed / groups if groups else math.nan,
            "roundtrip": float(roundtrip),
        }, scheme=scheme))
    return pd.concat(frames, ignore_index=True)


# --- several metrics, several tokenizers --------------------------------------------------------------------
def summary(tokenizers: Any, texts: Iterable[str] | str, *, alpha: float = 2.5,
            orders: Sequence[int] = (1, 2, 3)) -> pd.DataFrame:
    """Compression, fertility, utilisation, entropies and conditional entropies for one tokenizer or a list
    of them, encoding the corpus once per tokenizer. Long format with `alpha` / `order` where they apply."""
    _check_alpha(alpha)
    orders = _check_orders(orders)
    if not isinstance(tokenizers, (list, tuple)):
        tokenizers = [tokenizers]
    texts = _texts(texts)
    frames = []
    for tokenizer in tokenizers:
        enc = EncodedCorpus.encode(tokenizer, texts, offsets=True)
        frames += [_compression(enc), _fertility(enc), _utilisation(enc), _entropy(enc, alpha),
                   _conditional(enc, orders)]
    return pd.concat(frames, ignore_index=True)[["tokenizer", "metric", "alpha", "order", "value"]]
