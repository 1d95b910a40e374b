"""Exact byte-level probabilities (byte_probs.py) against brute-force enumeration on a tiny float64 model over a
tiny trained BPE vocabulary; token healing and naive baselines; bad input."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from workbench.models.lm import LM
from workbench.tokenization.bpe_train import train_bpe
from workbench.tokenization.byte_probs import END, ByteLevelLM
from workbench.tokenization.token_healing import naive_generate, token_healing_generate

CORPUS = ["abab aab abba baab ab ba", "aaa bbb abab baba", "ab ab ab abba"] * 3


@pytest.fixture(scope="module")
def lm():
    from transformers import AutoModelForCausalLM, LlamaConfig

    tok = train_bpe(CORPUS, 256 + 10 + 1, special_tokens=["<eos>"], eos="<eos>", min_frequency=1,
                    progress=False).tokenizer
    config = LlamaConfig(vocab_size=tok.vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, head_dim=8, max_position_embeddings=64,
                         eos_token_id=tok.eos_id, bos_token_id=None, pad_token_id=None, tie_word_embeddings=False)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float64, attn_implementation="sdpa")
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for _, p in sorted(model.named_parameters()):
            if p.ndim >= 2:
                p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64) * 0.5)
    model = model.eval()
    return LM(model, tok)


def _brute(lm: LM, x: bytes, validity: str, context: list[int], encode=None) -> np.ndarray:
    """[257]: P(text starts with x + b) for every byte b, and P(text == x, then EOS), by depth-first enumeration
    of token sequences over the whole vocabulary (every prefix scored from scratch, no KV cache), summing each
    sequence that first reaches past x (its last token spells byte len(x)); validity is checked on whole
    sequences with the tokenizer's encoder."""
    tok = lm.tokenizer
    vocab = [i for i in range(tok.vocab_size) if i not in tok.special_ids]
    pieces = {i: tok.token_bytes(i) for i in vocab}
    out = np.zeros(257)

    def logprobs(seq: list[int]) -> np.ndarray:
        with torch.no_grad():
            logits = lm.model(torch.tensor([context + seq])).logits[0, -1].double()
        return torch.log_softmax(logits, -1).numpy()

    encode = encode or tok.encode_bytes

    def valid(seq: list[int]) -> bool:
        if validity == "all":
            return True
        enc = encode(b"".join(pieces[t] for t in seq))
        return enc is None or enc == seq  # None: the tokenizer cannot encode these bytes (not UTF-8)

    def walk(seq: list[int], spelled: bytes, logp: float) -> None:
        lp = logprobs(seq)
        if spelled == x:
            out[END] += math.exp(logp + lp[tok.eos_id])
        for t in vocab:
            b = spelled + pieces[t]
            if len(b) > len(x) and b.startswith(x):
                if valid(seq + [t]):
                    out[b[len(x)]] += math.exp(logp + lp[t])
            elif x.startswith(b) and valid(seq + [t]):
                walk(seq + [t], b, logp + lp[t])

    walk([], b"", 0.0)
    return out


PREFIXES = [b"", b"a", b"ab", b"ba", b"aab", b"b a"]


@pytest.mark.parametrize("validity", ["all", "canonical"])
@pytest.mark.parametrize("prefix", PREFIXES)
def test_matches_brute_force(lm, validity, prefix):
    blm = ByteLevelLM(lm, validity=validity)
    dist = blm.next_byte_distribution(prefix)
    ctx = blm.context_ids
    brute = _brute(lm, prefix, validity, ctx)
    np.testing.assert_allclose(np.exp(dist.log_mass) * dist.probs, brute, rtol=0, atol=1e-12)
    np.testing.assert_allclose(dist.probs, brute / brute.sum(), rtol=0, atol=1e-9)
    assert abs(dist.probs.sum() - 1) < 1e-12
    if validity == "all":  # the lemma: sum over one-byte extensions and END is P(prefix) itself
        p_prefix = _brute(lm, prefix[:-1], "all", ctx)[prefix[-1]] if prefix else 1.0
        assert abs(math.exp(dist.log_mass) - p_prefix) < 1e-12


def test_canonical_prunes_mass_and_differs_from_all(lm):
    a = ByteLevelLM(lm, validity="all").next_byte_distribution(b"ab")
    c = ByteLevelLM(lm, validity="canonical").next_byte_distribution(b"ab")
    assert c.num_covers < a.num_covers
    assert c.log_mass < a.log_mass
    assert np.abs(a.probs - c.probs).max() > 1e-6


def test_empty_prefix_is_first_byte_distribution(lm):
    blm = ByteLevelLM(lm, validity="all")
    with torch.no_grad():
        lp = torch.log_softmax(lm.model(torch.tensor([blm.context_ids])).logits[0, -1].double(), -1).numpy()
    expected = np.zeros(257)
    for i in range(lm.tokenizer.vocab_size):
        if i == lm.tokenizer.eos_id:
            expected[END] += math.exp(lp[i])
        elif i not in lm.tokenizer.special_ids:
            expected[lm.tokenizer.token_bytes(i)[0]] += math.exp(lp[i])
    np.testing.assert_allclose(blm.next_byte_distribution(b"").probs, expected, atol=1e-12)


def test_invalid_utf8_bytes_in_and_out(lm):
    blm = ByteLevelLM(lm, validity="canonical")
    prefix = b"a\xff\xfe"
    dist = blm.next_byte_distribution(prefix)
    brute = _brute(lm, prefix, "canonical", blm.context_ids)
    np.testing.assert_allclose(np.exp(dist.log_mass) * dist.probs, brute, atol=1e-12)
    out = blm.generate(b"\xc3", max_new_bytes=3, temperature=1.0, seed=1)
    assert isinstance(out, bytes) and len(out) <= 3


def test_cache_reuse_matches_fresh(lm):
    blm = ByteLevelLM(lm)
    seq = [blm.next_byte_distribution(p).probs for p in (b"ab", b"aba", b"ab", b"b")]
    fresh = [ByteLevelLM(lm).next_byte_distribution(p).probs for p in (b"ab", b"aba", b"ab", b"b")]
    for s, f in zip(seq, fresh):
        np.testing.assert_allclose(s, f, atol=1e-12)


def test_generate_greedy_and_seeded(lm):
    blm = ByteLevelLM(lm)
    greedy = blm.generate(b"ab", max_new_bytes=4)
    x = b"ab"
    for b in greedy:  # each byte is the argmax of the exact distribution
        assert int(np.argmax(blm.next_byte_distribution(x).probs)) == b
        x += bytes([b])
    s1 = blm.generate(b"ab", max_new_bytes=5, temperature=1.0, seed=3)
    assert s1 == blm.generate(b"ab", max_new_bytes=5, temperature=1.0, seed=3)


def test_sampling_frequencies_match_distribution(lm):
    blm = ByteLevelLM(lm)
    probs = blm.next_byte_distribution(b"a").probs
    draws = [blm.generate(b"a", max_new_bytes=1, temperature=1.0, seed=s)[:1] for s in range(200)]
    counts = {b: sum(d == bytes([b]) for d in draws) for b in (ord("a"), ord("b"))}
    for b, c in counts.items():
        assert abs(c / 200 - probs[b]) < 4 * math.sqrt(probs[b] * (1 - probs[b]) / 200) + 0.01


def test_token_healing_and_naive(lm):
    blm = ByteLevelLM(lm)
    prompt = b"ab ab"
    ids = blm.encode(prompt)
    removed = lm.tokenizer.token_bytes(ids[-1])
    healed = token_healing_generate(blm, prompt, max_new_tokens=3)
    # brute-force the constrained first step
    with torch.no_grad():
        logits = lm.model(torch.tensor([blm.context_ids + ids[:-1]])).logits[0, -1]
    allowed = [i for i in range(lm.tokenizer.vocab_size) if i not in lm.tokenizer.special_ids
               and lm.tokenizer.token_bytes(i).startswith(removed)]
    first = max(allowed, key=lambda i: float(logits[i]))
    assert (removed + healed).startswith(lm.tokenizer.token_bytes(first))
    naive = naive_generate(blm, prompt, max_new_tokens=2)
    with torch.no_grad():
        logits = lm.model(torch.tensor([blm.context_ids + ids])).logits[0, -1]
    top = int(logits.argmax())
    if top != lm.tokenizer.eos_id:
        assert naive.startswith(lm.tokenizer.token_bytes(top))


def test_bad_input(lm):
    with pytest.raises(ValueError, match="validity"):
        ByteLevelLM(lm, validity="sometimes")
    with pytest.raises(ValueError, match="canonical_window"):
        ByteLevelLM(lm, canonical_window=0)
    with pytest.raises(ValueError, match="context_ids"):
        ByteLevelLM(lm, context_ids=[])
    blm = ByteLevelLM(lm)
    with pytest.raises(ValueError, match="prefix must be bytes"):
        blm.next_byte_distribution("ab")
    with pytest.raises(ValueError, match="max_new_bytes"):
        blm.generate(b"a", max_new_bytes=0)
    with pytest.raises(ValueError, match="temperature"):
        blm.generate(b"a", temperature=-1)
    with pytest.raises(ValueError, match="back"):
        token_healing_generate(blm, b"ab", back=0)


# ---- the fast byte-level BPE encoder (bytelevel_bpe.py) against the tokenizers backend ----------------------
TAILS = [b"", b"def tokenize(text):\n    return [tok", b"you'", b"we'l", b"it'", b"x = 12", b"   \n    \n  ",
         b"a \t", b"\n\n", b"caf\xc3", b"caf\xc3\xa9", "日本語の".encode(), "a\u00a0\u3000\x1c\x0b\x85 b\u2028".encode(),
         b"hello <|endof", b"<|im_start|>hi", b"end<|endoftext|>", b"  ", b"'", b"x=1.", b"\xf0\x9f\x98"]


def _backend_encodings(backend, datas):
    out = []
    for d in datas:
        try:
            out.append(list(backend.encode(d.decode("utf-8"), add_special_tokens=False).ids))
        except UnicodeDecodeError:
            out.append(None)
    return out


def test_fast_encoder_equals_backend_after_many_tails(byte_bpe):
    from workbench.tokenization.bytelevel_bpe import from_hf_tokenizer
    from workbench.tokenization.hf import HFTokenizer

    tok = HFTokenizer(byte_bpe)
    enc = from_hf_tokenizer(tok)
    assert enc is not None
    pieces = [tok.token_bytes(i) for i in range(tok.vocab_size) if i not in tok.special_ids]
    pieces += [b"<|endoftext|>", b"text|>", b"|>", b"'ll", b"ll", b" \n", b"\xa9", b"\x80abc"]
    for tail in TAILS:
        expected = _backend_encodings(byte_bpe, [tail + p for p in pieces])
        assert enc.encode_after(tail, pieces) == expected, tail
        assert enc.batch([tail + p for p in pieces]) == expected, tail


def test_fast_encoder_only_for_gpt2_style_tokenizers(metaspace_bpe, normalizing_bpe, byte_bpe):
    from tokenizers import Tokenizer, pre_tokenizers

    from workbench.tokenization.bytelevel_bpe import from_hf_tokenizer

    assert from_hf_tokenizer(metaspace_bpe) is None
    assert from_hf_tokenizer(normalizing_bpe) is None
    prefixed = Tokenizer.from_str(byte_bpe.to_str())
    prefixed.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    assert from_hf_tokenizer(prefixed) is None
    assert from_hf_tokenizer(byte_bpe) is not None


@pytest.fixture(scope="module")
def hf_lm(byte_bpe):
    from transformers import AutoModelForCausalLM, LlamaConfig

    from workbench.tokenization.hf import HFTokenizer

    tok = HFTokenizer(byte_bpe, eos_token="<|endoftext|>")
    config = LlamaConfig(vocab_size=tok.vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, head_dim=8, max_position_embeddings=256,
                         eos_token_id=tok.eos_id, bos_token_id=None, pad_token_id=None, tie_word_embeddings=False)
    torch.manual_seed(1)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float64, attn_implementation="sdpa").eval()
    return LM(model, tok)


@pytest.mark.parametrize("window", [None, 8])
def test_fast_encoder_same_distributions_as_backend(hf_lm, window):
    fast = ByteLevelLM(hf_lm, canonical_window=window)
    slow = ByteLevelLM(hf_lm, canonical_window=window, fast_encoder=False)
    assert hasattr(fast._encoder, "encode_after") and not hasattr(slow._encoder, "encode_after")
    for prefix in (b"", b"def tok", b"    return [to", b"you'", b"caf\xc3\xa9", b"x = 1"):
        a, b = fast.next_byte_distribution(prefix), slow.next_byte_distribution(prefix)
        assert a.num_covers == b.num_covers
        np.testing.assert_array_equal(a.probs, b.probs)
        assert a.log_mass == b.log_mass
    assert fast.generate(b"def tok", max_new_bytes=4) == slow.generate(b"def tok", max_new_bytes=4)


def test_fast_encoder_matches_brute_force(hf_lm, byte_bpe):
    """Canonical validity checked on whole sequences with the backend itself, as in _brute."""
    blm = ByteLevelLM(hf_lm)
    prefix = b"de"
    dist = blm.next_byte_distribution(prefix)
    brute = _brute(hf_lm, prefix, "canonical", blm.context_ids,
                   encode=lambda data: _backend_encodings(byte_bpe, [data])[0])
    np.testing.assert_allclose(np.exp(dist.log_mass) * dist.probs, brute, rtol=0, atol=1e-12)


@pytest.mark.slow
def test_fast_encoder_equals_backend_on_the_default_tokenizer():
    from workbench.tokenization import load_tokenizer
    from workbench.tokenization.bytelevel_bpe import from_hf_tokenizer

    tok = load_tokenizer("smollm2-135m")
    enc = from_hf_tokenizer(tok)
    assert enc is not None
    pieces = [tok.token_bytes(i) for i in range(tok.vocab_size) if i not in tok.special_ids]
    for tail in (b"    for idx, el", b"we'l"):
        assert enc.encode_after(tail, pieces) == _backend_encodings(tok.backend, [tail + p for p in pieces])
