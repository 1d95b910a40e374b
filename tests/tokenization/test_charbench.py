"""CharBench-style probes (charbench.py): gold answers against a brute-force recount, determinism, token
attribution by hand (byte tokenizer, GPT-2), evaluation with fake and forced models, aggregation, bad input."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from workbench.tokenization.bytes import ByteTokenizer
from workbench.tokenization.charbench import (
    TASKS,
    CharProbe,
    accuracy_by,
    attribute,
    corpus_words,
    evaluate,
    few_shot_prompt,
    make_items,
    parse_answer,
    query,
)

WORDS = ["banana", "strawberry", "bookkeeper", "a", "mississippi", "rhythm", "committee", "zz", "abracadabra"]


def brute(task: str, word: str, char: str) -> int:
    if task == "count":
        n = 0
        for ch in word:
            if ch == char:
                n += 1
        return n
    for position, ch in enumerate(word, start=1):
        if ch == char:
            return position
    raise AssertionError("the character must occur in the word")


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_gold_answers_match_brute_force(seed):
    items = make_items(WORDS, 200, seed=seed)
    assert [it.task for it in items] == [TASKS[i % 2] for i in range(200)]
    for it in items:
        assert it.word in WORDS and it.char in it.word
        assert it.answer == brute(it.task, it.word, it.char)
        assert it.prompt == query(it.task, it.word, it.char)
        assert f"Word: {it.word}\n" in it.prompt and f'"{it.char}"' in it.prompt and it.prompt.endswith("Answer:")
        assert it.token is None and it.token_len is None
    # every (word, char) pair and both tasks are reachable; answers take several values
    assert len({(it.word, it.char) for it in items}) > 20
    assert len({it.answer for it in items if it.task == "locate"}) > 3


def test_single_task_and_determinism():
    a = make_items(WORDS, 30, tasks=["locate"], seed=3)
    assert a == make_items(WORDS, 30, tasks="locate", seed=3)
    assert all(it.task == "locate" for it in a)
    assert a != make_items(WORDS, 30, tasks=["locate"], seed=4)
    assert make_items(WORDS, 10, seed=3) == make_items(WORDS, 20, seed=3)[:10]


def test_few_shot_prompt_format():
    item = CharProbe("count", "rhythm", "h", query("count", "rhythm", "h"), 2)
    prompt = few_shot_prompt(item, shots=2)
    assert prompt == (
        'Word: banana\nQuestion: How many times does the letter "a" occur in the word?\nAnswer: 3\n\n'
        'Word: letter\nQuestion: How many times does the letter "t" occur in the word?\nAnswer: 2\n\n'
        'Word: rhythm\nQuestion: How many times does the letter "h" occur in the word?\nAnswer:'
    )
    locate = CharProbe("locate", "rhythm", "h", query("locate", "rhythm", "h"), 2)
    assert few_shot_prompt(locate, shots=3).split("\n\n")[2] == (
        'Word: garden\nQuestion: At which position, counting from 1, does the letter "e" first occur in the '
        "word?\nAnswer: 5")
    assert few_shot_prompt(locate, shots=0) == locate.prompt


def test_attribution_on_byte_tokenizer():
    tok = ByteTokenizer(("<eos>",), eos="<eos>", name="bytes")
    for it in make_items(WORDS, 40, seed=5, tokenizer=tok):
        assert it.token == it.char and it.token_len == 1 and it.max_token_len == 1
        assert it.word_tokens == len(it.word) and it.tokenizer == "bytes"


@pytest.mark.slow
def test_attribution_on_gpt2_by_hand():
    from workbench.tokenization import load_tokenizer

    tok = load_tokenizer("gpt2")
    # GPT-2: " bookkeeper" = " book" + "keeper"; " paraphernalia" = " parap" + "hern" + "alia"; " hoorayed" =
    # " h" + "oor" + "ayed"
    cases = [("bookkeeper", "e", "keeper", 6, 6, 2), ("bookkeeper", "k", " book", 4, 6, 2),
             ("bookkeeper", "o", " book", 4, 4, 2), ("paraphernalia", "a", " parap", 5, 5, 3),
             ("paraphernalia", "h", "hern", 4, 4, 3), ("paraphernalia", "l", "alia", 4, 4, 3),
             ("hoorayed", "h", " h", 1, 1, 3), ("hoorayed", "y", "ayed", 4, 4, 3)]
    for word, char, token, token_len, max_len, n_tokens in cases:
        for task in TASKS:
            item = attribute(CharProbe(task, word, char, query(task, word, char), brute(task, word, char)), tok)
            assert (item.token, item.token_len, item.max_token_len, item.word_tokens) == \
                (token, token_len, max_len, n_tokens), (word, char)
            assert item.tokenizer == "gpt2"


def test_corpus_words():
    words = corpus_words("english-prose", limit=3, min_len=4, max_len=6)
    assert words and len(words) == len(set(words))
    assert all(w.isascii() and w.isalpha() and w.islower() and 4 <= len(w) <= 6 for w in words)


def test_parse_answer():
    assert parse_answer(" 3") == 3
    assert parse_answer(" 12 times") == 12
    assert parse_answer("3\n4") == 3
    assert parse_answer(" three") is None
    assert parse_answer("\n3") is None
    assert parse_answer("") is None


class FakeLM:
    """Answers with `answer(prompt)`; counts calls."""

    def __init__(self, answer):
        self.tokenizer = ByteTokenizer(("<eos>",), eos="<eos>", name="bytes")
        self.answer = answer
        self.calls = 0

    def generate(self, prompt, max_new_tokens, temperature, stop):
        self.calls += 1
        assert temperature == 0.0 and stop == "\n"
        return SimpleNamespace(text=self.answer(prompt), prompt_ids=list(prompt.encode()), seconds=0.0)


def _oracle(prompt: str) -> str:
    """Reads the last query of the prompt and answers it by brute force."""
    block = prompt.split("\n\n")[-1]
    word = block.split("\n")[0].removeprefix("Word: ")
    char = block.split('"')[1]
    task = "count" if "How many" in block else "locate"
    return f" {brute(task, word, char)}"


def test_evaluate_with_fake_models():
    items = make_items(WORDS, 24, seed=2)
    table = evaluate(FakeLM(_oracle), items, progress=False)
    assert len(table) == 24 and table["correct"].all()
    assert list(table["prediction"]) == [it.answer for it in items]
    assert list(table["word_len"]) == [len(it.word) for it in items]
    assert (table["token_len"] == 1).all()  # attributed with the model's (byte) tokenizer
    always_two = evaluate(FakeLM(lambda p: " 2 apples"), items, progress=False)
    assert list(always_two["correct"]) == [it.answer == 2 for it in items]
    nothing = evaluate(FakeLM(lambda p: " two"), items, progress=False)
    assert not nothing["correct"].any() and nothing["prediction"].isna().all()


def test_accuracy_by_counts_and_rates():
    items = make_items(WORDS, 40, seed=9)
    table = evaluate(FakeLM(lambda p: " 1"), items, progress=False)
    out = accuracy_by(table, "word_len")
    for task in ("all", *TASKS):
        chosen = [it for it in items if task in ("all", it.task)]
        for length in sorted({len(it.word) for it in chosen}):
            bucket = [it for it in chosen if len(it.word) == length]
            row = out[(out["task"] == task) & (out["word_len"] == length)].iloc[0]
            assert row["n"] == len(bucket)
            assert row["correct"] == sum(it.answer == 1 for it in bucket)
            assert row["accuracy"] == pytest.approx(row["correct"] / len(bucket))
    assert set(accuracy_by(table, "token_len", per_task=False)["task"]) == {"all"}


def test_evaluate_on_tiny_model_forced_and_free():
    from workbench.models.tiny import tiny_lm

    lm = tiny_lm("llama", seed=0)
    items = make_items(WORDS, 6, seed=1)
    lm.counters.reset()
    free = evaluate(lm, items, shots=1, max_new_tokens=3, progress=False)  # the tiny context is 256 bytes
    # the example block is run once: fewer prompt tokens through the model than the prompts hold
    assert lm.counters.tokens_processed < sum(len(few_shot_prompt(it, 1).encode()) for it in items)
    for it, (_, row) in zip(items, free.iterrows()):
        direct = lm.generate(few_shot_prompt(it, 1), max_new_tokens=3, temperature=0.0, stop="\n")
        assert row["output"] == direct.text and row["prediction"] == parse_answer(direct.text)
        assert row["prompt_tokens"] == len(few_shot_prompt(it, 1).encode())

    def force(module, args, kwargs, output):  # the prompt pass says "2", every later step says newline
        forced = torch.full_like(output.logits, -1e4)
        forced[..., ord("2") if output.logits.shape[1] > 1 else ord("\n")] = 0.0
        output.logits = forced
        return output

    handle = lm.model.register_forward_hook(force, with_kwargs=True)
    try:
        forced = evaluate(lm, items, shots=0, progress=False)
    finally:
        handle.remove()
    assert (forced["prediction"] == 2).all()
    assert list(forced["correct"]) == [it.answer == 2 for it in items]


def test_bad_input_before_work():
    with pytest.raises(ValueError, match="task must be one of"):
        make_items(WORDS, 3, tasks=["spell"])
    with pytest.raises(ValueError, match="tasks must name"):
        make_items(WORDS, 3, tasks=[])
    with pytest.raises(ValueError, match="words must not be empty"):
        make_items([], 3)
    with pytest.raises(ValueError, match="words must be non-empty"):
        make_items(["ok", ""], 3)
    with pytest.raises(ValueError, match="words must be a sequence"):
        make_items("banana", 3)
    for n in (0, -2, True, 2.0):
        with pytest.raises(ValueError, match="n must be"):
            make_items(WORDS, n)
    with pytest.raises(ValueError, match="seed"):
        make_items(WORDS, 2, seed="x")
    with pytest.raises(ValueError, match="min_len"):
        corpus_words("english-prose", min_len=5, max_len=3)
    with pytest.raises(ValueError, match="unknown option"):
        corpus_words("english-prose", colour="red")
    fake = FakeLM(_oracle)
    items = make_items(WORDS, 3)
    with pytest.raises(ValueError, match="shots"):
        evaluate(fake, items, shots=4, progress=False)
    with pytest.raises(ValueError, match="items must not be empty"):
        evaluate(fake, [], progress=False)
    with pytest.raises(ValueError, match="max_new_tokens"):
        evaluate(fake, items, max_new_tokens=0, progress=False)
    assert fake.calls == 0
    table = evaluate(fake, items, progress=False)
    with pytest.raises(ValueError, match="by must be a column"):
        accuracy_by(table, "colour")
