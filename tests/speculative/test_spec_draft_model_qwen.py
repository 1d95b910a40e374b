"""draft_model on the real Qwen2.5-Coder pair (fp32, CPU): the 0.5B drafts for the 1.5B when that asset is cached
(else for itself); greedy output token-identical to autoregressive greedy on a short code prompt."""
from __future__ import annotations

import pytest

from workbench.speculative import speculative_generate
from workbench.speculative.drafters import DraftModelDrafter

pytestmark = pytest.mark.slow


def test_qwen_draft_model_greedy_equals_autoregressive():
    from workbench.assets import home
    from workbench.models import LM

    draft = LM.load("qwen2.5-coder-0.5b")
    target = LM.load("qwen2.5-coder-1.5b") if (home() / "assets" / "qwen2.5-coder-1.5b" / "config.json").exists() else draft
    prompt = "def fibonacci(n):\n    "
    ref = target.generate(prompt, max_new_tokens=8)
    spec = speculative_generate(target, prompt, DraftModelDrafter(draft=draft, k=3), max_new_tokens=8, budget=3)
    assert spec.new_ids == ref.new_ids and spec.text == ref.text
    assert spec.acceptance_rate > 0.3  # a code continuation the small model mostly agrees on
