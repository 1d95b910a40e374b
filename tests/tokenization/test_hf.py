"""HFTokenizer on tiny HF tokenizers trained in the test: byte-level BPE, Llama-2-style "▁" + byte fallback,
and a normalizing one (NFKC + lower case)."""

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workbench.tokenization import HFTokenizer, Tokenizer, load_tokenizer
from workbench.tokenization.hf import bytes_to_unicode

from .conftest import SAMPLES, assert_tiles, running_spans

CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def test_bytes_to_unicode_is_gpt2_table():
    table = bytes_to_unicode()
    assert len(set(table.values())) == 256
    assert table[ord("A")] == "A" and table[ord("~")] == "~" and table[0xE9] == "é"
    assert table[ord(" ")] == "Ġ" and table[ord("\n")] == "Ċ" and table[0] == "Ā"  # the familiar GPT-2 marks


# --- byte-level BPE ---
@pytest.fixture(scope="module")
def byte_tok(byte_bpe):
    return HFTokenizer(byte_bpe, name="tiny-bytelevel")


def test_byte_level_attributes(byte_tok, byte_bpe):
    assert isinstance(byte_tok, Tokenizer)
    assert byte_tok.byte_level
    assert byte_tok.vocab_size == byte_bpe.get_vocab_size() == 500
    assert byte_tok.special_ids == frozenset({0, 1, 2})
    assert byte_tok.eos_id == byte_bpe.token_to_id("<|endoftext|>") and byte_tok.bos_id is None
    assert byte_tok.token_bytes(byte_bpe.token_to_id("Ġ")) == b" "
    assert byte_tok.token_bytes(1) == b"<|im_start|>"
    assert repr(byte_tok).startswith("HFTokenizer(name='tiny-bytelevel', vocab_size=500")


@pytest.mark.parametrize("text", SAMPLES)
def test_byte_level_round_trip_offsets_and_backend_ids(byte_tok, byte_bpe, text):
    data = text.encode()
    ids, offsets = byte_tok.encode_with_offsets(text)
    assert ids == byte_tok.encode(text) == byte_bpe.encode(text).ids
    assert byte_tok.decode(ids) == text
    pieces = [byte_tok.token_bytes(i) for i in ids]
    assert b"".join(pieces) == data
    assert offsets == running_spans(pieces)
    assert [data[s:e] for s, e in offsets] == pieces
    assert_tiles(offsets, data)


def test_byte_level_tokens_split_characters(byte_tok):
    _, offsets = byte_tok.encode_with_offsets("😀")  # not in the training text: 4 byte tokens
    assert offsets == [(0, 1), (1, 2), (2, 3), (3, 4)]


def test_specials_in_text_are_special_tokens(byte_tok):
    ids, offsets = byte_tok.encode_with_offsets("a<|im_end|>b")
    assert ids[1] == 2 and offsets == [(0, 1), (1, 11), (11, 12)]


@settings(max_examples=150, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40))
def test_byte_level_any_text(byte_bpe, text):
    tok = HFTokenizer(byte_bpe)
    ids, offsets = tok.encode_with_offsets(text)
    assert tok.decode(ids) == text
    assert b"".join(tok.token_bytes(i) for i in ids) == text.encode()
    assert_tiles(offsets, text.encode())


# --- Llama-2 style: "▁", dummy prefix, byte fallback ---
@pytest.fixture(scope="module")
def meta_tok(metaspace_bpe):
    return HFTokenizer(metaspace_bpe, name="tiny-metaspace", bos_token="<s>", eos_token="</s>")


def test_metaspace_attributes(meta_tok, metaspace_bpe):
    assert not meta_tok.byte_level
    assert (meta_tok.bos_id, meta_tok.eos_id) == (1, 2)
    assert meta_tok.token_bytes(metaspace_bpe.token_to_id("<0xF0>")) == b"\xf0"
    assert meta_tok.token_bytes(metaspace_bpe.token_to_id("\u2581")) == b" "
    assert meta_tok.encode("hi", add_special_tokens=True)[0] == 1
    assert meta_tok.encode("hi", add_special_tokens=True)[1:] == meta_tok.encode("hi")


@pytest.mark.parametrize("text", SAMPLES)
def test_metaspace_round_trip_and_offsets(meta_tok, metaspace_bpe, text):
    data = text.encode()
    ids, offsets = meta_tok.encode_with_offsets(text)
    assert ids == meta_tok.encode(text) == metaspace_bpe.encode(text, add_special_tokens=False).ids
    assert meta_tok.decode(ids) == text
    pieces = [meta_tok.token_bytes(i) for i in ids]
    if text:  # the dummy "▁" the normalizer prepends: pieces spell b" " + text
        assert b"".join(pieces) == b" " + data
        assert offsets == running_spans(pieces, shift=1)
    assert_tiles(offsets, data)


def test_metaspace_emoji_uses_byte_fallback(meta_tok):
    ids, offsets = meta_tok.encode_with_offsets("😀")
    pieces = [meta_tok.token_bytes(i) for i in ids]
    assert pieces == [b" ", b"\xf0", b"\x9f", b"\x98", b"\x80"]
    assert offsets == [(0, 0), (0, 1), (1, 2), (2, 3), (3, 4)]


def test_metaspace_added_whitespace_tokens_read_as_spaces(metaspace_bpe):
    # Gemma-style: added (non-special) tokens holding "▁", matched on the normalized text
    from tokenizers import AddedToken, Tokenizer, decoders, normalizers

    backend = Tokenizer.from_str(metaspace_bpe.to_str())
    backend.normalizer = normalizers.Replace(" ", "\u2581")  # Gemma: no dummy prefix
    backend.decoder = decoders.Sequence([decoders.Replace("\u2581", " "), decoders.ByteFallback(), decoders.Fuse()])
    content = "\u2581@@\u2581"  # not in the trained vocabulary
    assert backend.token_to_id(content) is None
    backend.add_tokens([AddedToken(content, normalized=True)])
    tok = HFTokenizer(backend)
    run = backend.token_to_id(content)
    assert run in backend.get_added_tokens_decoder()
    text = "a @@ b"
    ids, offsets = tok.encode_with_offsets(text)
    assert run in ids and tok.token_bytes(run) == b" @@ "
    assert tok.decode(ids) == text
    assert b"".join(tok.token_bytes(i) for i in ids) == text.encode()
    assert offsets[ids.index(run)] == (1, 5)


# --- normalizing tokenizer: offsets from the backend's spans ---
@pytest.fixture(scope="module")
def norm_tok(normalizing_bpe):
    return HFTokenizer(normalizing_bpe, name="tiny-nfkc-lower")


def test_normalizing_offsets_on_ascii_are_positions(norm_tok):
    # lower-casing keeps ASCII lengths, and Whitespace pre-tokenization drops the spaces, which the rule
    # gives to the token before them: expected spans written out by hand
    text = "Hello  World"
    ids, offsets = norm_tok.encode_with_offsets(text)
    tokens = [norm_tok.backend.id_to_token(i) for i in ids]
    assert "".join(tokens) == "helloworld"
    bounds = [0]
    pos = 0
    for t in tokens[:-1]:
        pos = text.lower().index(t, pos) + len(t)
        bounds.append(text.lower().index(tokens[len(bounds)], pos))
    assert offsets == list(zip(bounds, bounds[1:] + [len(text)]))


@pytest.mark.parametrize("text", SAMPLES + ["ＦＵＬＬ width and \ufb01ne ligature"])
def test_normalizing_offsets_tile(norm_tok, normalizing_bpe, text):
    ids, offsets = norm_tok.encode_with_offsets(text)
    assert ids == normalizing_bpe.encode(text).ids
    assert_tiles(offsets, text.encode(), normalizing=True)


def test_normalizing_fullwidth_spans_cover_the_original_characters(norm_tok):
    text = "ＡＢ cd"  # each fullwidth letter is 3 bytes and NFKC-normalizes to one ASCII letter
    ids, offsets = norm_tok.encode_with_offsets(text)
    tokens = [norm_tok.backend.id_to_token(i) for i in ids]
    for token, (s, e) in zip(tokens, offsets):
        import unicodedata

        assert unicodedata.normalize("NFKC", text.encode()[s:e].decode()).lower().strip() == token


# --- construction, errors ---
def test_rejects_non_backend():
    with pytest.raises(ValueError, match="tokenizer must be a tokenizers.Tokenizer"):
        HFTokenizer("gpt2")


def test_unknown_bos_token(byte_bpe):
    with pytest.raises(ValueError, match="bos_token='<nope>' is not in the vocabulary"):
        HFTokenizer(byte_bpe, bos_token="<nope>")


def test_truncation_and_padding_are_ignored_without_touching_the_callers_object(byte_bpe):
    from tokenizers import Tokenizer

    truncating = Tokenizer.from_str(byte_bpe.to_str())
    truncating.enable_truncation(3)
    tok = HFTokenizer(truncating)
    assert len(tok.encode("a b c d e f g")) == len(byte_bpe.encode("a b c d e f g").ids) > 3
    assert truncating.truncation is not None


def test_holes_in_the_vocabulary(byte_bpe):
    from tokenizers import Tokenizer

    state = json.loads(byte_bpe.to_str())
    state["model"]["vocab"]["ĠfarĠaway"] = 600  # ids 500..599 unused
    tok = HFTokenizer(Tokenizer.from_str(json.dumps(state)))
    assert tok.vocab_size == 601
    assert tok.token_bytes(600) == b" far away"
    with pytest.raises(ValueError, match="token_id 550 is unused"):
        tok.token_bytes(550)


def test_no_chat_template_without_a_folder(byte_tok):
    with pytest.raises(NotImplementedError, match="no chat template"):
        byte_tok.apply_chat_template([{"role": "user", "content": "hi"}])


# --- folders and chat templates through transformers ---
@pytest.fixture(scope="module")
def chat_folder(tmp_path_factory, byte_bpe):
    from transformers import PreTrainedTokenizerFast

    folder = tmp_path_factory.mktemp("chat_tok")
    hf = PreTrainedTokenizerFast(
        tokenizer_object=byte_bpe, eos_token="<|im_end|>", bos_token="<|endoftext|>", chat_template=CHAT_TEMPLATE
    )
    hf.save_pretrained(folder)
    return folder


def test_folder_reads_specials_from_config(chat_folder):
    tok = HFTokenizer.from_folder(chat_folder)
    assert tok.name == chat_folder.name
    assert (tok.bos_id, tok.eos_id) == (0, 2)
    assert tok.has_chat_template


def test_chat_template_known_answer(chat_folder, byte_bpe):
    from transformers import AutoTokenizer

    tok = load_tokenizer(chat_folder)
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi 😀"}]
    expected_text = "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi 😀<|im_end|>\n<|im_start|>assistant\n"
    assert tok.chat_text(messages) == expected_text
    ids = tok.apply_chat_template(messages)
    assert ids == byte_bpe.encode(expected_text).ids
    assert ids[0] == 1 and ids.count(1) == 3 and ids.count(2) == 2  # each marker is one special token
    hf = AutoTokenizer.from_pretrained(str(chat_folder))
    assert ids == hf.apply_chat_template(messages, add_generation_prompt=True, return_dict=False)
    assert tok.decode(ids, skip_special_tokens=True) == byte_bpe.decode(ids, skip_special_tokens=True)
    no_prompt = tok.apply_chat_template(messages, add_generation_prompt=False)
    assert tok.decode(no_prompt) == expected_text[: -len("<|im_start|>assistant\n")]


def test_chat_template_bad_messages(chat_folder):
    tok = load_tokenizer(chat_folder)
    with pytest.raises(ValueError, match="messages must be a list of dicts"):
        tok.apply_chat_template("hi")


def test_from_transformers_object(chat_folder):
    from transformers import AutoTokenizer

    hf = AutoTokenizer.from_pretrained(str(chat_folder))
    tok = load_tokenizer(hf)
    assert isinstance(tok, HFTokenizer)
    assert tok.eos_id == 2 and tok.has_chat_template
    assert tok.apply_chat_template([{"role": "user", "content": "x"}]) == hf.apply_chat_template(
        [{"role": "user", "content": "x"}], add_generation_prompt=True, return_dict=False
    )
    assert tok.encode("Hello there") == hf.encode("Hello there", add_special_tokens=False)
