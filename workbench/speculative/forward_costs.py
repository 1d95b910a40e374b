"""Measured forward costs of one prompt's decode: c(n) for n tokens fed after the prompt through the speculative
step's forward path, the autoregressive decode forward, and the prefill.

    costs = measure_forward_costs(lm, prompt_ids, max_fed=17, reps=5)
    costs.fed[n]   # seconds of a verification forward of n tokens (root + n - 1 draft nodes), median of reps
    costs.ar       # seconds of one `LM.generate` decode forward (1 token, the model's usual path), median
    costs.prefill  # seconds of the prompt's prefill (shared by both ways of decoding), median
    runs = time_fed_forwards(target, cache, root, sizes, reps)   # the raw timings ({n: [seconds per rep]})

The speculative forwards go through `TargetForward` exactly as `speculative_generate` runs them on CPU (GQA
attention over the un-repeated heads; input-major Linear weights from INPUT_MAJOR_FROM tokens, see
target_forward.py), the AR forward through `lm.forward` as `LM.generate` does. Sizes are interleaved within each
repetition (AR, then n = 1..max_fed) so that load changes on a shared machine hit every size alike (the
cost-aware budget of decode.py calibrates with `time_fed_forwards` for the same reason); every forward is cropped
away from the cache afterwards. The root token repeated n times stands in for a draft: the cost of a
forward does not depend on the token values. Simplification: costs are taken at the prompt's length and not
re-measured as the context grows during the generation.
"""
from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .target_forward import INPUT_MAJOR_FROM, TargetForward, default_input_major

if TYPE_CHECKING:  # pragma: no cover
    from workbench.models import LM
    from workbench.models.cache import KVCache


@dataclass
class ForwardCosts:
    """Median seconds per forward: `fed` by fed-token count, `ar` (one decode token), `prefill`."""

    fed: dict[int, float]
    ar: float
    prefill: float
    reps: int
    prompt_tokens: int
    runs: dict[str, list[float]] = field(default_factory=dict, repr=False)

    def relative(self) -> dict[int, float]:
        """c(n) / c_ar."""
        return {n: t / self.ar for n, t in self.fed.items()}

    def to_dict(self) -> dict[str, Any]:
        return {"fed": {str(n): t for n, t in self.fed.items()}, "ar": self.ar, "prefill": self.prefill,
                "reps": self.reps, "prompt_tokens": self.prompt_tokens,
                "relative": {str(n): r for n, r in self.relative().items()}}


def time_fed_forwards(target: TargetForward, cache: KVCache, root: int, sizes: Sequence[int],
                      reps: int) -> dict[int, list[float]]:
    """Seconds of `target([root] * n, cache)` for every n in `sizes`, `reps` rounds with the sizes interleaved in
    each round; the cache is cropped back after every forward. `target` must be entered."""
    length = cache.length
    runs: dict[int, list[float]] = {n: [] for n in sizes}
    for _ in range(reps):
        for n in sizes:
            tick = time.perf_counter()
            target([root] * n, cache)
            runs[n].append(time.perf_counter() - tick)
            cache.crop(length)
    return runs


def measure_forward_costs(lm: LM, prompt_ids: Sequence[int], max_fed: int = 17, reps: int = 5,
                          input_major: bool | None = None) -> ForwardCosts:
    """Median forward times for this prompt (module docstring). input_major: as in `speculative_generate`
    (None: on CPU for models whose Linear weights take <= 1 GiB)."""
    for name, value, low in (("max_fed", max_fed, 1), ("reps", reps, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
    prompt_ids = [int(t) for t in prompt_ids]
    if len(prompt_ids) < 2:
        raise ValueError(f"prompt_ids must hold at least 2 tokens (a prefix and the root), got {len(prompt_ids)}")
    if input_major is None:
        input_major = default_input_major(lm)
    runs: dict[str, list[float]] = {"prefill": [], "ar": [], **{str(n): [] for n in range(1, max_fed + 1)}}
    sizes = list(range(1, max_fed + 1))
    root = prompt_ids[-1]
    target = TargetForward(lm, gqa=lm.device.type == "cpu", input_major_from=INPUT_MAJOR_FROM if input_major else None)
    for _ in range(reps):
        cache = lm.new_cache()
        tick = time.perf_counter()
        lm.forward(prompt_ids[:-1], cache=cache, logits_to_keep=1)
        runs["prefill"].append(time.perf_counter() - tick)
        length = cache.length
        tick = time.perf_counter()
        lm.forward([root], cache=cache)
        runs["ar"].append(time.perf_counter() - tick)
        cache.crop(length)
        with target:
            for n, seconds in time_fed_forwards(target, cache, root, sizes, 1).items():
                runs[str(n)] += seconds
    return ForwardCosts(fed={n: statistics.median(runs[str(n)]) for n in range(1, max_fed + 1)},
                        ar=statistics.median(runs["ar"]), prefill=statistics.median(runs["prefill"]), reps=reps,
                        prompt_tokens=len(prompt_ids), runs=runs)
