"""Character-level probes in the style of CharBench (Uzan & Pinter, 2025, "CharBench: Evaluating the Role of
Tokenization in Character-Level Tasks", arXiv:2508.02591): does a model know what is inside its tokens?

Two tasks over single words:
  - "count":  how many times does character c occur in word w            (gold: w.count(c), always >= 1)
  - "locate": at which position, counting from 1, does c first occur in w  (gold: w.index(c) + 1)
The queried character is drawn uniformly among the word's distinct characters, so it always occurs in the word.
CharBench relates accuracy to the tokenization: here each item records, for a tokenizer, the token that holds the
queried character (its first occurrence, the one "locate" asks about; for "count" also the first occurrence,
`max_token_len` gives the longest token holding any occurrence) and that token's length in characters, counted
inside the word (a leading space that the token carries is not counted). The attribution tokenizes the item's
own query text, in which the word follows "Word: " and ends the line, as it does in the few-shot prompt.

Prompt format (greedy decoding, the answer is the integer at the start of the generated text, up to a newline):

    Word: banana
    Question: How many times does the letter "a" occur in the word?
    Answer: 3

    Word: <w>
    Question: ...
    Answer:

with `shots` (default 3) fixed worked examples of the same task (SHOTS below) before the query. The locate
question reads `At which position, counting from 1, does the letter "c" first occur in the word?`.

Simplified with respect to the paper: two of its task families (counting and first-occurrence position) over
lowercase ASCII words from one of the workbench's offline corpora, fixed hand-written shots, and no chat
template (plain completion, which also suits base models).
"""
from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

from workbench.tokenization.protocol import InputTypeError

TASKS = ("count", "locate")
QUESTIONS = {
    "count": 'How many times does the letter "{c}" occur in the word?',
    "locate": 'At which position, counting from 1, does the letter "{c}" first occur in the word?',
}
SHOTS = {  # (word, character): worked examples, the same for every item of a task
    "count": [("banana", "a"), ("letter", "t"), ("river", "v")],
    "locate": [("banana", "n"), ("window", "w"), ("garden", "e")],
}
_WORD = re.compile(r"[a-z]+")
_ANSWER = re.compile(r"\s*(-?\d+)")


@dataclass(frozen=True)
class CharProbe:
    """One probe item. `token`, `token_len`, `max_token_len`, `word_tokens` and `tokenizer` are filled by
    `attribute` (None until then)."""

    task: str
    word: str
    char: str
    prompt: str  # the query block: "Word: ...\nQuestion: ...\nAnswer:"
    answer: int
    token: str | None = None  # text of the token holding the first occurrence of `char` (may carry a space)
    token_len: int | None = None  # characters of the word inside that token
    max_token_len: int | None = None  # the same, maximized over every occurrence of `char`
    word_tokens: int | None = None  # tokens that overlap the word
    tokenizer: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def gold(task: str, word: str, char: str) -> int:
    """The gold answer of `task` for (word, char)."""
    _check_task(task)
    if task == "count":
        return word.count(char)
    return word.index(char) + 1


def query(task: str, word: str, char: str) -> str:
    """The query block of one item (no answer)."""
    return f"Word: {word}\nQuestion: {QUESTIONS[task].format(c=char)}\nAnswer:"


def few_shot_prompt(item: CharProbe, shots: int = 3) -> str:
    """The prompt given to the model: `shots` worked examples of the item's task, then its query."""
    if isinstance(shots, bool) or not isinstance(shots, int) or not 0 <= shots <= len(SHOTS[item.task]):
        raise ValueError(f"shots must be an int in [0, {len(SHOTS[item.task])}], got {shots!r}")
    blocks = [f"{query(item.task, w, c)} {gold(item.task, w, c)}" for w, c in SHOTS[item.task][:shots]]
    return "\n\n".join([*blocks, item.prompt])


def corpus_words(corpus: str = "english-prose", *, min_len: int = 3, max_len: int = 12, **options: Any) -> list[str]:
    """Distinct lowercase ASCII words (a-z only, as written in the text) of a corpus asset with a `text` column,
    in order of first appearance; `options` go to `workbench.assets.load_corpus` (e.g. limit=50)."""
    _check_lengths(min_len, max_len)
    from workbench.assets import load_corpus

    data = load_corpus(corpus, **options)
    if "text" not in data.column_names:
        raise ValueError(f"corpus {corpus!r} has no 'text' column (columns: {data.column_names})")
    seen: dict[str, None] = {}
    for text in data["text"]:
        for m in re.finditer(r"[A-Za-z]+", text or ""):
            w = m.group()
            if _WORD.fullmatch(w) and min_len <= len(w) <= max_len:
                seen.setdefault(w)
    if not seen:
        raise ValueError(f"corpus {corpus!r} has no lowercase words of {min_len}..{max_len} letters")
    return list(seen)


def make_items(words: Sequence[str], n: int, *, tasks: Sequence[str] = TASKS, seed: int = 0,
               tokenizer: Any = None) -> list[CharProbe]:
    """`n` probe items, tasks in turn (item i has task tasks[i % len(tasks)]), word drawn uniformly from
    `words` (with replacement) and character uniformly from the word's distinct characters, with
    `random.Random(seed)`: the same arguments give the same items. With `tokenizer`, items are attributed."""
    if isinstance(n, bool) or not isinstance(n, int) or n <= 0:
        raise ValueError(f"n must be an int >= 1, got {n!r}")
    if isinstance(tasks, str):
        tasks = [tasks]
    tasks = list(tasks)
    if not tasks:
        raise ValueError(f"tasks must name at least one of {list(TASKS)}")
    for task in tasks:
        _check_task(task)
    if isinstance(words, str):
        raise InputTypeError("words must be a sequence of words, got a single str")
    words = list(words)
    if not words:
        raise ValueError("words must not be empty")
    bad = [w for w in words if not isinstance(w, str) or not w or any(ch.isspace() for ch in w)]
    if bad:
        raise ValueError(f"words must be non-empty strings without whitespace, got {bad[:5]}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise InputTypeError(f"seed must be an int, got {seed!r}")
    rng = random.Random(seed)
    items = []
    for i in range(n):
        task = tasks[i % len(tasks)]
        word = words[rng.randrange(len(words))]
        char = sorted(set(word))[rng.randrange(len(set(word)))]
        items.append(CharProbe(task, word, char, query(task, word, char), gold(task, word, char)))
    if tokenizer is not None:
        items = [attribute(item, tokenizer) for item in items]
    return items


def attribute(item: CharProbe, tokenizer: Any) -> CharProbe:
    """`item` with the token holding its queried character, per `tokenizer` (see the module docstring)."""
    data = item.prompt.encode("utf-8")
    start = data.index(b"Word: ") + len(b"Word: ")
    word = item.word.encode("utf-8")
    _, spans = tokenizer.encode_with_offsets(item.prompt)
    # byte offset of each character of the word inside the prompt
    char_bytes = [start + len(item.word[:k].encode("utf-8")) for k in range(len(item.word))]
    word_end = start + len(word)

    def holder(pos: int) -> int:
        return next(k for k, (a, b) in enumerate(spans) if a <= pos < b)

    def inside(k: int) -> int:  # characters of the word inside token k
        a, b = spans[k]
        return sum(a <= p < b for p in char_bytes)

    occurrences = [char_bytes[k] for k, ch in enumerate(item.word) if ch == item.char]
    first = holder(occurrences[0])
    a, b = spans[first]
    overlapping = [k for k, (a2, b2) in enumerate(spans) if a2 < word_end and b2 > start]
    return replace(item, token=data[a:b].decode("utf-8", "replace"), token_len=inside(first),
                   max_token_len=max(inside(holder(p)) for p in occurrences), word_tokens=len(overlapping),
                   tokenizer=getattr(tokenizer, "name", type(tokenizer).__name__))


def parse_answer(text: str) -> int | None:
    """The integer at the start of a model's answer (after spaces), else None."""
    m = _ANSWER.match(text.split("\n", 1)[0])
    return int(m.group(1)) if m else None


def evaluate(lm: Any, items: Sequence[CharProbe], *, shots: int = 3, max_new_tokens: int = 4,
             progress: bool = True):
    """Run `lm` (a `workbench.models.LM`, or anything with `.tokenizer` and a compatible `generate`) greedily on
    every item's few-shot prompt; a pandas table, one row per item: task, word, char, answer, output,
    prediction, correct, word_len, token, token_len, max_token_len, word_tokens, prompt_tokens, seconds.
    A real `LM` (one with `new_cache`/`forward`) decodes through `_SharedPrefix`: the same greedy decoding as
    `lm.generate(prompt, temperature=0, stop="\\n")`, but the example block's KV cache is computed once per task."""
    import pandas as pd
    from tqdm.auto import tqdm

    items = list(items)
    if not items:
        raise ValueError("items must not be empty")
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be an int >= 1, got {max_new_tokens!r}")
    for item in items:
        if not isinstance(item, CharProbe):
            raise InputTypeError(f"items must be CharProbe values, got {type(item).__name__}")
        few_shot_prompt(item, shots)  # checks shots before any work
    tok = lm.tokenizer
    shared = _SharedPrefix(lm) if hasattr(lm, "new_cache") and hasattr(lm, "forward") else None
    rows = []
    for item in tqdm(items, desc="charbench", disable=not progress):
        if item.tokenizer != getattr(tok, "name", type(tok).__name__):
            item = attribute(item, tok)
        prompt = few_shot_prompt(item, shots)
        if shared is not None:
            gen = shared.generate(prompt, few_shot_prompt(item, shots)[: -len(item.prompt)], max_new_tokens)
        else:
            gen = lm.generate(prompt, max_new_tokens=max_new_tokens, temperature=0.0, stop="\n")
        prediction = parse_answer(gen.text)
        rows.append({"task": item.task, "word": item.word, "char": item.char, "answer": item.answer,
                     "output": gen.text, "prediction": prediction, "correct": prediction == item.answer,
                     "word_len": len(item.word), "token": item.token, "token_len": item.token_len,
                     "max_token_len": item.max_token_len, "word_tokens": item.word_tokens,
                     "prompt_tokens": len(gen.prompt_ids), "seconds": gen.seconds})
    return pd.DataFrame(rows)


class _SharedPrefix:
    """Greedy decoding as `lm.generate(prompt, temperature=0, stop="\\n")`, with the KV cache of the few-shot
    examples computed once per distinct example block and reused (the prompt's own token ids are used, so the
    model sees the same tokens; logits agree with one full prefill up to float rounding)."""

    def __init__(self, lm: Any) -> None:
        from workbench.models.generation import eos_ids

        self.lm = lm
        self.ends = eos_ids(lm)
        self.bases: dict[str, tuple[list[int], Any]] = {}

    def generate(self, prompt: str, shots_text: str, max_new_tokens: int) -> Any:
        import time

        from workbench.models.generation import prompt_ids

        lm = self.lm
        start = time.perf_counter()
        ids = prompt_ids(lm, prompt)
        if shots_text not in self.bases:
            shot_ids = lm.tokenizer.encode(shots_text, add_special_tokens=True) if shots_text else []
            k = 0
            while k < min(len(shot_ids), len(ids)) - 1 and shot_ids[k] == ids[k]:
                k += 1  # the last token of the example block may merge with the query: keep it out
            cache = lm.new_cache()
            if k:
                lm.forward(ids[:k], cache=cache)
            self.bases[shots_text] = (ids[:k], cache)
        base_ids, base_cache = self.bases[shots_text]
        k = 0
        while k < min(len(base_ids), len(ids) - 1) and base_ids[k] == ids[k]:
            k += 1
        cache = base_cache.clone()
        cache.crop(k)
        logits = lm.forward(ids[k:], cache=cache).logits[0, -1]
        new_ids: list[int] = []
        text_end = None
        eos = False
        while True:
            token = int(logits.argmax())
            new_ids.append(token)
            if token in self.ends:
                eos = True
                break
            text = lm.tokenizer.decode(new_ids)
            if "\n" in text:
                text_end = text.find("\n")
                break
            if len(new_ids) >= max_new_tokens or cache.length >= lm.max_context:
                break
            logits = lm.forward([token], cache=cache).logits[0, -1]
        text = lm.tokenizer.decode(new_ids[:-1] if eos else new_ids)
        if text_end is not None:
            text = text[:text_end]
        return _Gen(text=text, prompt_ids=ids, seconds=time.perf_counter() - start)


@dataclass
class _Gen:
    text: str
    prompt_ids: list[int]
    seconds: float


def accuracy_by(table: Any, by: str = "token_len", *, per_task: bool = True):
    """Accuracy and item count per value of column `by` (e.g. "token_len", "word_len", "word_tokens"),
    per task when `per_task` (plus task "all"): columns task, <by>, n, correct, accuracy."""
    import pandas as pd

    if by not in table.columns:
        raise ValueError(f"by must be a column of the table, one of {list(table.columns)}, got {by!r}")
    parts = [table.assign(task="all")]
    if per_task:
        parts.append(table)
    frame = pd.concat(parts, ignore_index=True)
    out = (frame.groupby(["task", by], sort=True)["correct"].agg(n="size", correct="sum").reset_index())
    out["correct"] = out["correct"].astype(int)
    out["accuracy"] = out["correct"] / out["n"]
    return out


def _check_task(task: Any) -> None:
    if task not in TASKS:
        raise ValueError(f"task must be one of {list(TASKS)}, got {task!r}")


def _check_lengths(min_len: Any, max_len: Any) -> None:
    for name, value in (("min_len", min_len), ("max_len", max_len)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    if min_len > max_len:
        raise ValueError(f"min_len must be <= max_len, got {min_len} > {max_len}")
