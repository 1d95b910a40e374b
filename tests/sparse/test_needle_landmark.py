import random
import re

import pytest

from workbench.models.tiny import tiny_tokenizer
from workbench.sparse.needle import (
    FORMATS,
    LANDMARK_FILLER,
    LANDMARK_INSTRUCTION,
    QUESTION,
    PasskeyFormat,
    answer_key,
    make_needle_item,
    repeated_filler,
)

REP = len(LANDMARK_FILLER) + 1  # bytes of one " "-joined repetition after the first


def copy_oracle(prompt: str) -> str:
    """A perfect reader: the text that follows "The pass key is" where it is followed by something (the needle)."""
    found = [m.group(1) for m in re.finditer(r"The pass key is ([^.]*)\.", prompt)]
    assert len(found) == 1, found
    return " " + found[0]


def test_paper_strings():
    assert LANDMARK_INSTRUCTION == ("There is an important info hidden inside a lot of irrelevant text. Find it and "
                                    "memorize them. I will quiz you about the important information there.\n")
    fmt = FORMATS["landmark"]
    assert fmt.needle.format(key="12345") == "\nThe pass key is 12345. Remember it. 12345 is the pass key.\n"
    assert fmt.question == "\nWhat is the pass key? The pass key is"


def test_repeated_filler_bytes():
    tok = tiny_tokenizer()
    ids, bounds = repeated_filler(tok, "ab.", 10)
    assert bytes(ids) == b"ab. ab. ab."  # 3 + 4 + 4 bytes >= 10
    assert bounds == [0, 3, 7, 11]


@pytest.mark.parametrize("length,depth", [(600, 0.0), (600, 0.5), (777, 0.9), (1000, 1.0), (1000, 0.33)])
def test_landmark_item_by_hand(length, depth):
    tok = tiny_tokenizer()
    item = make_needle_item(tok, None, length=length, depth=depth, seed=11, fmt="landmark")
    key = str(random.Random(11).randint(10000, 99999))
    needle = f"\nThe pass key is {key}. Remember it. {key} is the pass key.\n"
    text = bytes(item.ids).decode()
    assert len(item.ids) == length and item.passkey == key and item.fmt == "landmark"
    assert text.startswith(LANDMARK_INSTRUCTION) and text.endswith(QUESTION)
    assert text[item.needle_start:item.needle_end] == needle
    n = length - len(LANDMARK_INSTRUCTION) - len(needle) - len(QUESTION)
    bounds = [0] + [len(LANDMARK_FILLER) + k * REP for k in range(n // REP + 1)]
    cut = item.needle_start - len(LANDMARK_INSTRUCTION)
    # the needle sits at the repetition boundary nearest to depth * n
    assert cut in bounds and cut <= n
    assert all(abs(cut - depth * n) <= abs(b - depth * n) for b in bounds if b <= n)
    before = text[len(LANDMARK_INSTRUCTION):item.needle_start]
    after = text[item.needle_end:-len(QUESTION)]
    whole = " ".join([LANDMARK_FILLER] * (n // REP + 2))
    assert before == whole[:cut] and after == whole[:n - cut]
    assert answer_key(copy_oracle(text)) == item.passkey


def test_depth_moves_the_needle_and_seed_draws_the_key():
    tok = tiny_tokenizer()
    items = [make_needle_item(tok, None, 2000, d, seed=3, fmt="landmark") for d in (0.1, 0.5, 0.9)]
    starts = [it.needle_start for it in items]
    assert starts == sorted(starts) and len(set(starts)) == 3
    assert len({it.passkey for it in items}) == 1
    assert make_needle_item(tok, None, 2000, 0.5, seed=4, fmt="landmark").passkey != items[0].passkey
    four = make_needle_item(tok, None, 2000, 0.5, seed=3, fmt="landmark", key_digits=4)
    assert four.passkey == str(random.Random(3).randint(1000, 9999)) and len(four.ids) == 2000
    assert answer_key(copy_oracle(bytes(four.ids).decode())) == four.passkey


def test_custom_format_and_kjv_default_unchanged():
    tok = tiny_tokenizer()
    fmt = PasskeyFormat("mini", "Find the key.\n", "\nkey={key}\n", "\nkey=", filler="xy.")
    item = make_needle_item(tok, None, 60, 0.5, seed=0, fmt=fmt)
    assert len(item.ids) == 60 and item.fmt == "mini"
    assert bytes(item.ids).decode().count(f"key={item.passkey}") == 1
    filler = list(b"abcdefghij" * 30)
    assert make_needle_item(tok, filler, 400, 0.5, seed=7).ids == make_needle_item(
        tok, filler, 400, 0.5, seed=7, fmt="kjv").ids


def test_bad_input_names_the_parameter():
    tok = tiny_tokenizer()
    with pytest.raises(ValueError, match=r"fmt must be one of \['kjv', 'landmark'\]"):
        make_needle_item(tok, None, 600, 0.5, seed=0, fmt="grass")
    with pytest.raises(ValueError, match="filler_ids must be None for format 'landmark'"):
        make_needle_item(tok, [1, 2, 3], 600, 0.5, seed=0, fmt="landmark")
    with pytest.raises(ValueError, match="filler_ids: format 'kjv' needs the caller's filler token ids"):
        make_needle_item(tok, None, 600, 0.5, seed=0)
    with pytest.raises(ValueError, match=r"key_digits must be an int in \[1, 18\], got 0"):
        make_needle_item(tok, None, 600, 0.5, seed=0, fmt="landmark", key_digits=0)
    with pytest.raises(ValueError, match=r"depth must be a number in \[0, 1\], got 2"):
        make_needle_item(tok, None, 600, 2, seed=0, fmt="landmark")
    with pytest.raises(ValueError, match="length 100 is too short"):
        make_needle_item(tok, None, 100, 0.5, seed=0, fmt="landmark")
    with pytest.raises(ValueError, match="length 600 exceeds the model's context of 256 tokens"):
        make_needle_item(tok, None, 600, 0.5, seed=0, fmt="landmark", max_context=256)
    with pytest.raises(ValueError, match="filler text must not be empty"):
        repeated_filler(tok, "", 10)


@pytest.mark.slow
def test_the_default_model_solves_the_landmark_format_with_full_attention():
    from workbench.models import LM
    from workbench.sparse.needle import needle_accuracy

    lm = LM.load("smollm2-135m")
    items = [make_needle_item(lm.tokenizer, None, 384, d, seed=s, fmt="landmark") for s, d in ((0, 0.2), (1, 0.8))]
    res = needle_accuracy(lm, items, runs=[("streaming_llm", 32)])
    assert res.rows[0].policy == "full" and res.rows[0].accuracy == 1.0, res.rows[0].answers
    assert res.rows[1].accuracy == 0.0, res.rows[1].answers  # a 32-token window cannot see the key 100+ tokens back
