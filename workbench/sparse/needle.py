"""Passkey retrieval under sparse attention: a random 5-digit key hidden at a depth in long filler text.

    items = [make_needle_item(lm.tokenizer, None, length=4096, depth=d, seed=s, fmt="landmark") for d in (0.1, 0.9)]
    res = needle_accuracy(lm, items, runs=[("full", None), ("streaming_llm", 256), ("quest", 256)])
    res.rows[2].accuracy

Task (the passkey retrieval test of Mohtashami and Jaggi, "Landmark Attention", 2023): an instruction, then
filler text with one sentence stating the pass key inserted at `depth` (0 = right after the instruction, 1 = at
the end of the filler), then the question, ending in "The pass key is", so the model's greedy continuation
should be the key. Two formats (`FORMATS`):

- "landmark": the paper's own task: its instruction, its filler ("The grass is green. The sky is blue. ..."
  repeated, built here) and the needle only between two repetitions of the filler sentence group: the cut is
  snapped to the repetition boundary nearest to `depth`; the filler after the needle starts a fresh repetition
  and is cut wherever the length runs out (just before the question).
- "kjv": real text as filler (the caller passes token ids, e.g. KJV verses from the offline corpora); each item
  starts at a seeded offset in it and the needle is cut in at exactly round(depth * n) (inside a word as often
  as not). The instruction is a paraphrase of the paper's.

Construction, in tokens (segments are tokenized separately and concatenated, so a segment boundary never
merges tokens): [instruction][filler[:cut]][needle][filler[cut:n]][question] with exactly `length` tokens in
all, n = length minus the fixed segments, cut = round(depth * n) (inside a word as often as not; the needle
sentence starts with a newline; for "landmark" see above). The answer is decoded greedily under the policy (the first answer token comes
from the dense prefill, the rest from decode steps, as in `sparse_generate`); an item is correct when the first
run of digits in the decoded answer equals the key.

Items of the same length are evaluated as one batch: one dense prefill (`workbench.sparse.prefill`) reused by
every policy and budget, each run decoding on its own clone of the cache.
"""
from __future__ import annotations

import random
import re
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

import torch

from workbench.sparse.integration import SparseAttention
from workbench.sparse.perplexity import Run, check_budgets, make_selector
from workbench.sparse.prefill import decode, dense_prefill, start_policies
from workbench.sparse.registry import get_selector
from workbench.sparse.selector import Selector

if TYPE_CHECKING:  # pragma: no cover
    from workbench.models.lm import LM

INSTRUCTION = ("There is an important piece of information hidden inside a lot of irrelevant text. Find it and "
               "memorize it. I will quiz you about it.\n")
NEEDLE = "\nThe pass key is {key}. Remember it. {key} is the pass key.\n"
QUESTION = "\nWhat is the pass key? The pass key is"
LANDMARK_INSTRUCTION = ("There is an important info hidden inside a lot of irrelevant text. Find it and memorize "
                        "them. I will quiz you about the important information there.\n")
LANDMARK_FILLER = "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again."


@dataclass(frozen=True)
class PasskeyFormat:
    """The strings of one passkey task. needle: with "{key}"; filler: a passage repeated as the filler (None: the
    caller passes filler token ids)."""

    name: str
    instruction: str
    needle: str
    question: str
    filler: str | None = None


FORMATS = {
    "kjv": PasskeyFormat("kjv", INSTRUCTION, NEEDLE, QUESTION),
    "landmark": PasskeyFormat("landmark", LANDMARK_INSTRUCTION, NEEDLE, QUESTION, filler=LANDMARK_FILLER),
}


def get_format(fmt: str | PasskeyFormat) -> PasskeyFormat:
    """A format by name (or a PasskeyFormat as is)."""
    if isinstance(fmt, PasskeyFormat):
        return fmt
    if fmt not in FORMATS:
        raise ValueError(f"fmt must be one of {sorted(FORMATS)} or a PasskeyFormat, got {fmt!r}")
    return FORMATS[fmt]


def repeated_filler(tokenizer, text: str, tokens: int) -> tuple[list[int], list[int]]:
    """`text` repeated (joined by spaces) to at least `tokens` tokens, each repetition tokenized on its own so the
    repetition boundaries are known: (ids, boundaries), boundaries = token offsets where a repetition starts."""
    first, rest = list(tokenizer.encode(text)), list(tokenizer.encode(" " + text))
    if not first or not rest:
        raise ValueError("filler text must not be empty")
    ids, bounds = list(first), [0]
    while len(ids) < tokens:
        bounds.append(len(ids))
        ids += rest
    bounds.append(len(ids))
    return ids, bounds


@dataclass
class NeedleItem:
    """One passkey prompt. needle_start / needle_end: token span of the needle sentence in `ids`."""

    ids: list[int]
    passkey: str
    length: int
    depth: float
    seed: int
    needle_start: int
    needle_end: int
    filler_offset: int  # where in the filler ids this item's filler starts
    fmt: str = "kjv"
    key_digits: int = 5

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("ids")
        return d


def check_depth(depth: float) -> float:
    if isinstance(depth, bool) or not isinstance(depth, (int, float)) or not 0 <= depth <= 1:
        raise ValueError(f"depth must be a number in [0, 1], got {depth!r}")
    return float(depth)


def make_needle_item(tokenizer, filler_ids: Sequence[int] | None, length: int, depth: float, seed: int,
                     max_context: int | None = None, fmt: str | PasskeyFormat = "kjv",
                     key_digits: int = 5) -> NeedleItem:
    """A passkey prompt of exactly `length` tokens with the key at `depth` (see the module docstring).

    The key is random.Random(seed).randint(10**(key_digits-1), 10**key_digits - 1) (5 digits: 10000..99999, as
    in the paper). "kjv"-style formats (no built-in filler): the filler starts at a seeded offset in `filler_ids`
    (which must hold at least the filler's length). "landmark": the filler is built here; pass filler_ids=None.
    max_context: refuse longer items (the model's context).
    """
    form = get_format(fmt)
    depth = check_depth(depth)
    if isinstance(length, bool) or not isinstance(length, int) or length < 1:
        raise ValueError(f"length must be a positive int, got {length!r}")
    if isinstance(key_digits, bool) or not isinstance(key_digits, int) or not 1 <= key_digits <= 18:
        raise ValueError(f"key_digits must be an int in [1, 18], got {key_digits!r}")
    if max_context is not None and length > max_context:
        raise ValueError(f"length {length} exceeds the model's context of {max_context} tokens")
    if form.filler is not None and filler_ids is not None:
        raise ValueError(f"filler_ids must be None for format {form.name!r} (it builds its own filler)")
    if form.filler is None and filler_ids is None:
        raise ValueError(f"filler_ids: format {form.name!r} needs the caller's filler token ids, got None")
    rng = random.Random(seed)
    key = str(rng.randint(10 ** (key_digits - 1), 10 ** key_digits - 1))
    head = list(tokenizer.encode(form.instruction, add_special_tokens=True))
    needle = list(tokenizer.encode(form.needle.format(key=key)))
    tail = list(tokenizer.encode(form.question))
    n = length - len(head) - len(needle) - len(tail)
    if n < 0:
        raise ValueError(f"length {length} is too short: instruction, needle and question take "
                         f"{length - n} tokens")
    if form.filler is not None:
        filler, bounds = repeated_filler(tokenizer, form.filler, n)
        cut = min((b for b in bounds if b <= n), key=lambda b: (abs(b - depth * n), b))
        ids = head + filler[:cut] + needle + filler[:n - cut] + tail
        offset = 0
    else:
        if len(filler_ids) < n:
            raise ValueError(f"filler_ids: {len(filler_ids)} tokens, need at least {n} for length {length}")
        offset = rng.randint(0, len(filler_ids) - n)
        filler = list(filler_ids[offset:offset + n])
        cut = round(depth * n)
        ids = head + filler[:cut] + needle + filler[cut:] + tail
    start = len(head) + cut
    return NeedleItem(ids=ids, passkey=key, length=length, depth=depth, seed=seed, needle_start=start,
                      needle_end=start + len(needle), filler_offset=offset, fmt=form.name, key_digits=key_digits)


def answer_key(text: str) -> str | None:
    """The first run of digits in a decoded answer (None if there is none)."""
    m = re.search(r"\d+", text)
    return m.group(0) if m else None


@dataclass
class NeedleRow:
    """One policy at one budget over a set of items."""

    policy: str
    budget: object
    params: dict
    items: int
    correct: int
    accuracy: float
    by_length: dict  # str(length) -> accuracy
    by_depth: dict  # str(depth) -> accuracy
    answers: list  # per item: the decoded answer text
    seconds: float


@dataclass
class NeedleResult:
    items: list[NeedleItem]
    answer_tokens: int
    prefill_seconds: float
    rows: list[NeedleRow] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"items": [i.to_dict() for i in self.items], "answer_tokens": self.answer_tokens,
                "prefill_seconds": self.prefill_seconds, "rows": [asdict(r) for r in self.rows]}

    def __repr__(self) -> str:
        lines = [f"NeedleResult({len(self.items)} items, {self.answer_tokens} answer tokens)"]
        lines += [f"  {r.policy:>14} budget={r.budget!s:>6} accuracy={r.accuracy:.2f}" for r in self.rows]
        return "\n".join(lines)


def needle_accuracy(lm: LM, items: Sequence[NeedleItem], runs: Sequence[Run | Selector], answer_tokens: int = 6,
                    group: int = 8, progress: bool = False) -> NeedleResult:
    """Greedy passkey answers of every run on every item (a "full" run is added first when missing).

    Budgets are checked before any work against the longest context reached (longest item + answer_tokens - 1),
    as `sparse_generate` does; shorter items read everything when the budget exceeds their context. answer_tokens:
    tokens decoded per answer (6 covers " 12345" with one token per digit, as in SmolLM2's tokenizer). `group`
    runs are decoded together as one batch (memory: group x items-of-a-length copies of the cache).
    """
    if not items:
        raise ValueError("items must hold at least one NeedleItem")
    if isinstance(answer_tokens, bool) or not isinstance(answer_tokens, int) or answer_tokens < 1:
        raise ValueError(f"answer_tokens must be an int >= 1, got {answer_tokens!r}")
    if isinstance(group, bool) or not isinstance(group, int) or group < 1:
        raise ValueError(f"group must be an int >= 1, got {group!r}")
    for it in items:
        if it.length + answer_tokens > lm.max_context:
            raise ValueError(f"length {it.length} + {answer_tokens} answer tokens exceed the model's context of "
                             f"{lm.max_context} tokens")
    selectors = [make_selector(r) for r in runs]
    if not any(s.name == "full" for s in selectors):
        selectors.insert(0, get_selector("full"))
    check_budgets(selectors, max(it.length for it in items) + answer_tokens - 1, lm.num_kv_heads, lm.num_layers)

    groups: dict[int, list[int]] = {}
    for i, it in enumerate(items):
        groups.setdefault(it.length, []).append(i)
    answers: list[list[str]] = [[""] * len(items) for _ in selectors]
    seconds = [0.0] * len(selectors)
    prefill_seconds = 0.0
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(groups) * len(selectors) * max(answer_tokens - 1, 0), desc="needle", unit="run-step")
    for idx in groups.values():
        t = time.perf_counter()
        pre = dense_prefill(lm, torch.tensor([items[i].ids for i in idx]))
        pre.logits = pre.logits.clone()  # not a view: frees the prefill's [B, P, vocab] logits (1.6 GB at P=8k)
        attns = [SparseAttention(s) for s in selectors]
        start_policies(pre, attns)
        prefill_seconds += time.perf_counter() - t
        for lo in range(0, len(attns), group):
            part = attns[lo:lo + group]
            t = time.perf_counter()
            steps = answer_tokens - 1
            if steps:
                fed, logits = decode(lm, part, pre, steps, progress=bar)
                out = torch.cat([fed, logits[..., -1, :].argmax(-1, keepdim=True)], -1)  # [R, B, answer_tokens]
            else:
                out = pre.logits.argmax(-1, keepdim=True).expand(len(part), -1, -1)
            for r, attn in enumerate(part):
                for row, i in enumerate(idx):
                    answers[lo + r][i] = lm.tokenizer.decode(out[r, row].tolist())
                attn.states.clear()
                seconds[lo + r] += (time.perf_counter() - t) / len(part)
        del pre, attns
    if bar is not None:
        bar.close()

    result = NeedleResult(items=list(items), answer_tokens=answer_tokens, prefill_seconds=prefill_seconds)
    for sel, ans, sec in zip(selectors, answers, seconds):
        ok = [answer_key(a) == it.passkey for a, it in zip(ans, items)]
        budget = sel.budget.to_dict() if sel.budget is not None else None
        if isinstance(budget, dict) and set(budget) == {"tokens"}:
            budget = budget["tokens"]
        result.rows.append(NeedleRow(
            policy=sel.name, budget=budget, params={k: v for k, v in sel.params().items() if k != "budget"},
            items=len(items), correct=sum(ok), accuracy=sum(ok) / len(ok),
            by_length=_mean_by(ok, [str(it.length) for it in items]),
            by_depth=_mean_by(ok, [f"{it.depth:g}" for it in items]), answers=ans, seconds=sec))
    return result


def _mean_by(ok: list[bool], keys: list[str]) -> dict:
    out: dict[str, list[bool]] = {}
    for o, k in zip(ok, keys):
        out.setdefault(k, []).append(o)
    return {k: sum(v) / len(v) for k, v in out.items()}
