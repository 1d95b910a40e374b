"""TargetForward (GQA attention without repeated heads, input-major weights from 4 fed tokens) computes the same
logits as the plain forward; gqa_attention equals the reference attention."""
import pytest
import torch

from workbench.models import reference_attention, tiny_lm
from workbench.models.layout import is_input_major
from workbench.speculative.target_forward import INPUT_MAJOR_FROM, TargetForward, gqa_attention

PROMPT = list(b"the cat sat on the mat, the cat sat on")


@pytest.mark.parametrize("new", [1, 5])
def test_gqa_attention_equals_reference(new):
    g = torch.Generator().manual_seed(0)
    q, k, v = torch.randn(1, 6, new, 8, generator=g), torch.randn(1, 2, 9, 8, generator=g), torch.randn(1, 2, 9, 8,
                                                                                                       generator=g)
    mask = torch.where(torch.rand(1, 1, new, 9, generator=g) < 0.3, torch.finfo(torch.float32).min, 0.0)
    mask[..., -new:] = 0.0
    for m in (mask, None):
        want = reference_attention(q, k, v, scaling=0.3, attention_mask=m)
        torch.testing.assert_close(gqa_attention(q, k, v, scaling=0.3, attention_mask=m), want, atol=1e-6, rtol=0)


@pytest.mark.parametrize("arch", ["llama", "gemma3"])
def test_target_forward_equals_plain_forward(arch):
    lm = tiny_lm(arch, seed=0)
    cache = lm.new_cache()
    lm.forward(PROMPT[:-6], cache=cache)
    seen = []
    head = lm.model.get_output_embeddings()
    hook = head.register_forward_pre_hook(lambda m, a: seen.append(is_input_major(m.weight)))
    for n in (1, 2, INPUT_MAJOR_FROM, 6):
        ids = PROMPT[-6:][:n]
        want = lm.forward(ids, cache=cache.clone()).logits
        with TargetForward(lm) as target:
            got = target(ids, cache.clone()).logits
        torch.testing.assert_close(got, want, atol=1e-5, rtol=0)
    hook.remove()
    assert seen[1::2] == [False, False, True, True]  # every second call is TargetForward's
    assert lm.model.config._attn_implementation == "sdpa" and head.weight.is_contiguous()  # restored
