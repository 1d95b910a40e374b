import random

import pytest

from workbench.models.tiny import tiny_lm, tiny_tokenizer
from workbench.sparse.needle import (
    INSTRUCTION,
    NEEDLE,
    QUESTION,
    answer_key,
    make_needle_item,
    needle_accuracy,
)

FILLER = list(b"abcdefghij" * 6)  # byte ids: 60 tokens of filler with a visible period
FIXED = 232  # bytes of instruction + needle + question (the tiny model's context is 256)


@pytest.fixture(scope="module")
def lm():
    return tiny_lm("llama", seed=3)


def test_item_by_hand():
    tok = tiny_tokenizer()  # one token per byte, no BOS
    item = make_needle_item(tok, FILLER, length=250, depth=0.5, seed=7)
    rng = random.Random(7)
    key = str(rng.randint(10000, 99999))
    assert item.passkey == key and len(key) == 5
    needle = f"\nThe pass key is {key}. Remember it. {key} is the pass key.\n"
    assert NEEDLE.format(key=key) == needle
    n = 250 - len(INSTRUCTION) - len(needle) - len(QUESTION)  # filler tokens
    assert n == 250 - FIXED
    assert item.filler_offset == rng.randint(0, len(FILLER) - n)
    cut = round(0.5 * n)
    assert item.needle_start == len(INSTRUCTION) + cut and item.needle_end == item.needle_start + len(needle)
    text = bytes(item.ids).decode()
    assert len(item.ids) == 250
    assert text.startswith(INSTRUCTION) and text.endswith(QUESTION)
    assert text[item.needle_start:item.needle_end] == needle
    filler = bytes(FILLER[item.filler_offset:item.filler_offset + n]).decode()
    assert text[len(INSTRUCTION):item.needle_start] == filler[:cut]
    assert text[item.needle_end:-len(QUESTION)] == filler[cut:]


def test_depth_ends_and_seeding():
    tok = tiny_tokenizer()
    first = make_needle_item(tok, FILLER, length=250, depth=0.0, seed=1)
    last = make_needle_item(tok, FILLER, length=250, depth=1.0, seed=1)
    assert first.needle_start == len(INSTRUCTION)  # right after the instruction
    assert last.needle_end == 250 - len(QUESTION)  # right before the question
    assert first.passkey == last.passkey
    again = make_needle_item(tok, FILLER, length=250, depth=0.3, seed=1)
    assert again.ids == make_needle_item(tok, FILLER, length=250, depth=0.3, seed=1).ids
    other = make_needle_item(tok, FILLER, length=250, depth=0.3, seed=2)
    assert other.passkey != again.passkey


def test_answer_key():
    assert answer_key(" 12345. Remember") == "12345"
    assert answer_key(" the key is 4 2") == "4"
    assert answer_key(" no digits") is None


def test_full_and_covering_budgets_answer_as_plain_greedy_decoding(lm):
    tok = lm.tokenizer
    items = [make_needle_item(tok, FILLER, 248, d, seed=i) for i, d in enumerate((0.2, 0.8))]
    items.append(make_needle_item(tok, FILLER, 240, 0.5, seed=5))
    res = needle_accuracy(lm, items, runs=[("h2o", 251), ("quest", 251, {"page_size": 8}), ("streaming_llm", 16)],
                          answer_tokens=4, group=2)
    full, h2o, quest, stream = res.rows
    expected = [tok.decode(lm.generate(it.ids, max_new_tokens=4).new_ids) for it in items]
    assert full.answers == expected and h2o.answers == expected and quest.answers == expected
    assert stream.answers != expected  # a 16-token window changes the answers of this model
    assert full.by_length.keys() == {"248", "240"} and full.by_depth.keys() == {"0.2", "0.8", "0.5"}
    # a random tiny model does not know the key: accuracy is counted from the parsed answers
    assert full.correct == sum(answer_key(a) == it.passkey for a, it in zip(full.answers, items))


def test_bad_input_is_refused_before_work(lm):
    tok = lm.tokenizer
    with pytest.raises(ValueError, match=r"depth must be a number in \[0, 1\], got 1.5"):
        make_needle_item(tok, FILLER, 250, 1.5, seed=0)
    with pytest.raises(ValueError, match=r"depth must be a number in \[0, 1\], got -0.1"):
        make_needle_item(tok, FILLER, 250, -0.1, seed=0)
    with pytest.raises(ValueError, match="length 300 exceeds the model's context of 256 tokens"):
        make_needle_item(tok, FILLER, 300, 0.5, seed=0, max_context=lm.max_context)
    with pytest.raises(ValueError, match="length 200 is too short: instruction, needle and question take 232"):
        make_needle_item(tok, FILLER, 200, 0.5, seed=0)
    with pytest.raises(ValueError, match="filler_ids: 10 tokens, need at least 18"):
        make_needle_item(tok, FILLER[:10], 250, 0.5, seed=0)
    item = make_needle_item(tok, FILLER, 240, 0.5, seed=0)
    calls = lm.counters.forward_calls
    with pytest.raises(ValueError, match="budget: tokens must be > 0"):
        needle_accuracy(lm, [item], runs=[("quest", 0)])
    with pytest.raises(ValueError, match=r"budget: 246 tokens is larger than the context \(245 tokens\)"):
        needle_accuracy(lm, [item], runs=[("quest", 246)])
    with pytest.raises(ValueError, match="exceed the model's context of 256"):
        needle_accuracy(lm, [item], runs=[], answer_tokens=20)
    assert lm.counters.forward_calls == calls


@pytest.mark.slow
def test_the_default_model_finds_the_key_with_full_attention():
    from workbench.models import LM

    lm = LM.load("smollm2-135m")
    filler = lm.tokenizer.encode(" ".join(["In the beginning God created the heaven and the earth."] * 40))
    items = [make_needle_item(lm.tokenizer, filler, 256, 0.5, seed=s) for s in (0, 1)]
    res = needle_accuracy(lm, items, runs=[("streaming_llm", 16)])
    assert res.rows[0].policy == "full" and res.rows[0].accuracy == 1.0, res.rows[0].answers
    assert res.rows[1].accuracy == 0.0  # a 16-token window cannot see the key 100+ tokens back
