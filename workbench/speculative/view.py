"""The view of a SpeculativeGeneration: `gen.view()` / `gen.show()`.

    recorder = DraftRecorder("prompt_lookup")
    gen = speculative_generate(lm, "the cat sat on the mat, the cat", recorder, max_new_tokens=32)
    gen.view(drafts=recorder)      # draft tree of a step, accepted-length timeline, summary, steps table
    gen.show(step=3, drafts=recorder)

Parts: the draft tree of one step (node 0 the root: the last token before the step; its drafted nodes; the
bonus token the verifier emitted; the accepted path root -> accepted nodes -> bonus highlighted, drafted nodes
scored 1 if accepted and 0 if not); a bar plot of accepted draft tokens per step; a summary table (tau, acceptance,
forward calls, tokens/s, ...); and a per-step table whose rows select the step the tree shows (live widget).

The result itself keeps per step only counts and the emitted tokens, so without `drafts` (a `DraftRecorder`
used for the generation, or its records) the tree shows the emitted path of the step alone.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import ipywidgets

from workbench.speculative.metrics import SpeculativeGeneration
from workbench.speculative.recorder import DraftRecord, DraftRecorder
from workbench.views.base import View
from workbench.views.html import escape
from workbench.views.plots import Plot, bar_plot
from workbench.views.table import Table
from workbench.views.token_strip import display_text
from workbench.views.tree import TreeView


def _records(gen: SpeculativeGeneration, drafts: DraftRecorder | Sequence[DraftRecord] | None) -> list[DraftRecord] | None:
    if drafts is None:
        return None
    records = drafts.records if isinstance(drafts, DraftRecorder) else list(drafts)
    if len(records) != len(gen.steps):
        raise ValueError(f"drafts: {len(records)} recorded steps, but the generation has {len(gen.steps)}; pass "
                         "the DraftRecorder used for this generation")
    for k, (rec, step) in enumerate(zip(records, gen.steps)):
        if not isinstance(rec, DraftRecord):
            raise ValueError(f"drafts[{k}]: must be a DraftRecord, got {type(rec).__name__}")  # noqa: TRY004
        emitted = [rec.tree.token(i) for i in rec.accepted_nodes] + [rec.bonus_token]
        if len(rec.tree) != step.drafted or emitted != list(step.tokens):
            raise ValueError(f"drafts[{k}]: does not match step {k} of the generation (drafted {len(rec.tree)} vs "
                             f"{step.drafted}, tokens {emitted} vs {list(step.tokens)}); pass the DraftRecorder "
                             "used for this generation")
    return records


def _label(tokenizer: Any, token: int) -> str:
    if tokenizer is None:
        return f"#{token}"
    return display_text(tokenizer.token_bytes(int(token)))


def step_tree(gen: SpeculativeGeneration, step: int, record: DraftRecord | None = None,
              tokenizer: Any = None) -> TreeView:
    """The tree of step `step`: root, drafted nodes (or only the accepted ones when `record` is None), bonus."""
    s = gen.steps[step]
    before = sum(x.emitted for x in gen.steps[:step])
    root = (list(gen.prompt_ids) + list(gen.new_ids))[len(gen.prompt_ids) + before - 1]
    if record is not None:
        tokens = [record.tree.token(i) for i in range(len(record.tree))]
        parents = [record.tree.parent(i) + 1 for i in range(len(record.tree))]
        accepted = [i + 1 for i in record.accepted_nodes]
        scores: list[float | None] = [1.0 if i in record.accepted_nodes else 0.0 for i in range(len(tokens))]
        shown = f"{s.drafted} drafted (depth {s.depth})"
    else:
        tokens = list(s.tokens[:s.accepted])
        parents = list(range(len(tokens)))
        accepted = list(range(1, len(tokens) + 1))
        scores = [1.0] * len(tokens)
        shown = (f"{s.drafted} drafted (depth {s.depth}), draft tree not recorded: showing the accepted path only "
                 "(draft with a DraftRecorder and pass drafts= to see the tree)")
    bonus = s.tokens[-1]
    labels = ([_label(tokenizer, root)] + [_label(tokenizer, t) for t in tokens]
              + [_label(tokenizer, bonus) + " (bonus)"])
    parents = [-1] + parents + [accepted[-1] if accepted else 0]
    highlight = [0] + accepted + [len(labels) - 1]
    title = f"step {step}: {shown}, {s.accepted} accepted + bonus token"
    return TreeView(labels, parents, scores=[None] + scores + [None], highlight=highlight, title=title,
                    score_label="accepted")


def summary_table(gen: SpeculativeGeneration) -> Table:
    """One row: drafter, verifier, tokens, steps, tau, acceptance, forward calls, tokens/s, seconds, stop."""
    return Table([{
        "drafter": gen.drafter, "verifier": gen.verifier, "budget": gen.settings.get("budget"),
        "new tokens": len(gen.new_ids), "steps": len(gen.steps), "tau": gen.tau,
        "acceptance": gen.acceptance_rate, "forward calls": gen.forward_calls, "tokens/s": gen.tokens_per_second,
        "seconds": gen.seconds, "draft seconds": gen.draft_seconds, "stop": gen.stop_reason,
    }], title="tau: tokens emitted per target forward step (bonus included); acceptance: accepted / drafted")


def steps_table(gen: SpeculativeGeneration, tokenizer: Any = None) -> Table:
    """One row per step: drafted nodes, depth, accepted, emitted, and the emitted tokens."""
    rows = [{"step": k, "drafted": s.drafted, "depth": s.depth, "accepted": s.accepted, "emitted": s.emitted,
             "tokens": " ".join(_label(tokenizer, t) for t in s.tokens)} for k, s in enumerate(gen.steps)]
    return Table(rows, columns=["step", "drafted", "depth", "accepted", "emitted", "tokens"],
                 title="steps (click a row to show its tree)")


def timeline(gen: SpeculativeGeneration) -> Plot:
    """Accepted draft tokens per step (a bar per step)."""
    accepted = [s.accepted for s in gen.steps]
    mean = sum(accepted) / len(accepted) if accepted else 0.0
    return bar_plot(list(range(len(accepted))), {"accepted": accepted}, xlabel="step", ylabel="accepted tokens",
                    title=f"accepted draft tokens per step (mean {mean:.2f})", size=(6.0, 2.6))


class SpeculativeView(View, ipywidgets.VBox):
    """Draft tree of the selected step, accepted-length timeline, summary and steps table (rows select)."""

    kind = "speculative"

    def __init__(self, gen: SpeculativeGeneration, step: int | None = None,
                 drafts: DraftRecorder | Sequence[DraftRecord] | None = None, tokenizer: Any = None) -> None:
        if not isinstance(gen, SpeculativeGeneration):
            raise ValueError(f"gen: must be a SpeculativeGeneration, got {type(gen).__name__}")  # noqa: TRY004
        n = len(gen.steps)
        if step is not None and (isinstance(step, bool) or not isinstance(step, int) or not 0 <= step < n):
            raise ValueError(f"step: must be None or a step index in [0, {n}), got {step!r}")
        self.gen = gen
        self.records = _records(gen, drafts)
        if tokenizer is None and isinstance(drafts, DraftRecorder):
            tokenizer = drafts.tokenizer
        self.tokenizer = tokenizer
        self.summary = summary_table(gen)
        self.steps = steps_table(gen, tokenizer)
        self.timeline = timeline(gen) if n else None
        self.tree: TreeView | None = None
        self.step = -1
        self._tree_box = ipywidgets.VBox()
        self._plot = ipywidgets.HTML(self.timeline.to_html() if self.timeline else "")
        super().__init__(children=[self._tree_box, self._plot, self.summary, self.steps])
        self.steps.observe(lambda change: change["new"] >= 0 and self.select(change["new"]), names="selected")
        if n:
            self.select(self.default_step() if step is None else step)

    def default_step(self) -> int:
        """The first step with the most accepted tokens (the most telling tree)."""
        accepted = [s.accepted for s in self.gen.steps]
        return accepted.index(max(accepted))

    def select(self, step: int) -> None:
        """Show the tree of step `step` (the steps table's row follows)."""
        if isinstance(step, bool) or not isinstance(step, int) or not 0 <= step < len(self.gen.steps):
            raise ValueError(f"step: must be a step index in [0, {len(self.gen.steps)}), got {step!r}")
        self.step = step
        record = self.records[step] if self.records is not None else None
        self.tree = step_tree(self.gen, step, record, self.tokenizer)
        self._tree_box.children = (self.tree,)
        self.steps.selected = step

    @property
    def parts(self) -> list[View]:
        return [v for v in (self.tree, self.timeline, self.summary, self.steps) if v is not None]

    def html_body(self) -> str:
        g = self.gen
        head = (f'<div class="wb-title">speculative decoding: {escape(g.drafter)} + {escape(g.verifier)}, '
                f"{len(g.new_ids)} new tokens in {len(g.steps)} steps, &tau; = {g.tau:.2f}</div>"
                f'<pre style="white-space:pre-wrap">{escape(g.text)}</pre>')
        return head + "".join(f"<div>{v.html_body()}</div>" for v in self.parts)

    def to_text(self) -> str:
        return "\n".join([repr(self.gen)] + [v.to_text() for v in self.parts])

    def show(self) -> SpeculativeView:
        from IPython.display import display

        display(self)
        return self


def speculative_view(gen: SpeculativeGeneration, step: int | None = None,
                     drafts: DraftRecorder | Sequence[DraftRecord] | None = None,
                     tokenizer: Any = None) -> SpeculativeView:
    """The view of `gen` with the tree of `step` shown (None: the first step with the most accepted tokens).

    drafts: the `DraftRecorder` the generation drafted through (or its records) to show full draft trees;
    tokenizer: for token labels (default: the recorder's, i.e. the target's; without one, labels are '#id')."""
    return SpeculativeView(gen, step, drafts, tokenizer)
