"""Tiny tokenizers for the tokenization tests, all built locally (no network, a second or so in total)."""

from __future__ import annotations

import io
import itertools
import json
import textwrap
from pathlib import Path

import pytest

# Varied sample: ASCII, accents, CJK, emoji (incl. ZWJ and flags), code, leading/trailing/multiple spaces,
# newlines, CRLF, tabs, non-breaking space, combining marks.
SAMPLES = [
    "",
    " ",
    "Hello, world!",
    "  two leading spaces",
    "trailing spaces   ",
    "multiple   inner    spaces",
    "line one\nline two\n\nline four\n",
    "\r\nwindows line\r\n",
    "tabs\tand\tmore\t\t",
    "Crème brûlée, naïve façade, Ærøskøbing, Straße",
    "日本語のテキストと中文字符",
    "emoji 😀🎉 family 👨\u200d👩\u200d👧 flag 🇫🇷",
    "def f(x):\n    return x ** 2  # square\n\n\tpass\n",
    "mixed: café ☕ 東京 🗼 code `a = {'k': [1, 2]}`",
    "\u00a0non-breaking\u00a0space and e\u0301 combining",
]

_TRAIN = textwrap.dedent(
    """\
    The quick brown fox jumps over the lazy dog. Crème brûlée and naïve façades in the café.
    日本語のテキスト。東京は大きい都市です。中文字符和汉字。
    def tokenize(text):
        return [token for token in text.split() if token]

    class Tokenizer:
        def __init__(self, vocab):
            self.vocab = vocab
    """
)


def training_text() -> str:
    """A few KB of mixed text and code: this file's training paragraph plus two stdlib modules."""
    import json as json_mod
    import textwrap as textwrap_mod

    parts = [_TRAIN * 3, Path(json_mod.decoder.__file__).read_text(), Path(textwrap_mod.__file__).read_text()[:6000]]
    return "\n".join(parts)


def assert_tiles(offsets: list[tuple[int, int]], data: bytes, normalizing: bool = False) -> None:
    """The offset contract: half-open spans covering `data` exactly and in order. A normalizing backend may
    drop all of a whitespace-only input (no tokens, no spans)."""
    if not data or (normalizing and not offsets and not data.strip()):
        assert offsets == [] or all(span == (0, 0) for span in offsets)
        return
    assert offsets, "non-empty input must have tokens"
    assert offsets[0][0] == 0
    assert offsets[-1][1] == len(data)
    for (_, e0), (s1, _) in itertools.pairwise(offsets):
        assert e0 == s1
    assert all(s <= e for s, e in offsets)


def running_spans(pieces: list[bytes], shift: int = 0) -> list[tuple[int, int]]:
    """Expected spans written out independently: cumulative lengths, minus a dummy prefix byte."""
    spans, pos = [], 0
    for piece in pieces:
        spans.append((max(pos - shift, 0), max(pos + len(piece) - shift, 0)))
        pos += len(piece)
    return spans


@pytest.fixture(scope="session")
def byte_bpe():
    """A byte-level BPE (GPT-2 style) trained with HF tokenizers, with two chat specials."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=500,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        show_progress=False,
    )
    tok.train_from_iterator([training_text()], trainer=trainer)
    return tok


@pytest.fixture(scope="session")
def metaspace_bpe():
    """A Llama-2-style HF tokenizer: "▁" for spaces, dummy prefix, byte fallback, BOS post-processor."""
    from tokenizers import (
        Tokenizer,
        decoders,
        models,
        normalizers,
        processors,
        trainers,
    )

    tok = Tokenizer(models.BPE(byte_fallback=True, unk_token="<unk>"))
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("\u2581"), normalizers.Replace(" ", "\u2581")])
    tok.decoder = decoders.Sequence(
        [decoders.Replace("\u2581", " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)]
    )
    trainer = trainers.BpeTrainer(vocab_size=450, special_tokens=["<unk>", "<s>", "</s>"], show_progress=False)
    tok.train_from_iterator(training_text().splitlines(), trainer=trainer)
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    # byte-fallback tokens live in the model vocabulary (not as added tokens), as in Llama-2's tokenizer.json
    state = json.loads(tok.to_str())
    vocab = state["model"]["vocab"]
    for b in range(256):
        vocab[f"<0x{b:02X}>"] = len(vocab)
    return Tokenizer.from_str(json.dumps(state))


@pytest.fixture(scope="session")
def normalizing_bpe():
    """An HF tokenizer whose normalizer rewrites text (NFKC + lower case): offsets need the hint path."""
    from tokenizers import (
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        trainers,
    )

    tok = Tokenizer(models.BPE(unk_token="[UNK]"))
    tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.decoder = decoders.BPEDecoder()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["[UNK]"], show_progress=False)
    tok.train_from_iterator([training_text()], trainer=trainer)
    return tok


def _train_sp(**options) -> bytes:
    import sentencepiece as spm

    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(training_text().splitlines()),
        model_writer=model,
        vocab_size=700,
        model_type="bpe",
        byte_fallback=True,
        character_coverage=1.0,
        minloglevel=2,
        **options,
    )
    return model.getvalue()


@pytest.fixture(scope="session")
def sp_model_bytes() -> bytes:
    """SentencePiece BPE with byte fallback, identity normalizer and whitespace kept (like Llama-2/Mistral)."""
    return _train_sp(normalization_rule_name="identity", remove_extra_whitespaces=False)


@pytest.fixture(scope="session")
def sp_nfkc_model_bytes() -> bytes:
    """SentencePiece with its defaults: NFKC normalization and collapsed whitespace."""
    return _train_sp()


@pytest.fixture(scope="session")
def sp_file(tmp_path_factory, sp_model_bytes) -> Path:
    path = tmp_path_factory.mktemp("sp") / "tiny.model"
    path.write_bytes(sp_model_bytes)
    return path


@pytest.fixture(scope="session")
def tiny_encoding(byte_bpe):
    """A tiktoken Encoding whose ranks are the byte-level BPE's merges: the 256 bytes, then each merge result."""
    import tiktoken

    from workbench.tokenization.hf import bytes_to_unicode

    inverse = {c: b for b, c in bytes_to_unicode().items()}
    merges = json.loads(byte_bpe.to_str())["model"]["merges"]
    ranks = {bytes([b]): b for b in range(256)}
    for merge in merges:
        left, right = merge if isinstance(merge, list) else merge.split(" ")
        token = bytes(inverse[c] for c in left + right)
        ranks.setdefault(token, len(ranks))
    pattern = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
    return tiktoken.Encoding(
        name="tiny", pat_str=pattern, mergeable_ranks=ranks, special_tokens={"<|endoftext|>": len(ranks)}
    )
