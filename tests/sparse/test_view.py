"""Static views of the sparse results: SparseGeneration.view() / SelectionReport.view() (tables of the
dataclass fields, checked against the objects' own numbers) and show()."""
import pytest
import torch
from conftest import make_qkv

from workbench.models.tiny import tiny_lm
from workbench.sparse import (
    SelectionReport,
    SparseGeneration,
    evaluate_selection,
    get_selector,
    sparse_generate,
)
from workbench.sparse.view import generation_view, report_view
from workbench.views import Table


def test_generation_view_lists_every_step():
    lm = tiny_lm("llama", seed=0)
    gen = sparse_generate(lm, [(5 * i + 1) % 256 for i in range(20)], "quest", budget=8, max_new_tokens=4)
    view = gen.view()
    assert isinstance(view, Table) and isinstance(gen, SparseGeneration)
    rows = view.records()
    assert [r["step"] for r in rows] == [s.step for s in gen.steps] == [0, 1, 2]
    for row, step in zip(rows, gen.steps):
        assert row["total bytes"] == step.kv_bytes + step.metadata_bytes + step.index_bytes
        assert row["of dense"] == pytest.approx(step.total_bytes / step.dense_kv_bytes)
    html = view.to_html()
    assert "quest" in html and "<table" in html and "<script" not in html
    assert f"{gen.bytes_ratio:.3f} of dense" in view.title and "needs_budget" not in view.title


def test_report_view_has_every_field():
    q, k, v, _ = make_qkv(0)
    report = evaluate_selection(get_selector("oracle", budget=5), q, k, v)
    assert isinstance(report, SelectionReport)
    table = report.view()
    values = {r["measure"]: r["value"] for r in table.records()}
    assert values["recall"] == report.recall and values["total_bytes"] == report.total_bytes
    assert values["params"] == str(report.params)
    assert "SelectionReport: oracle" in table.to_html()


def test_show_displays_the_view(monkeypatch):
    shown = []
    monkeypatch.setattr("IPython.display.display", lambda obj: shown.append(obj))
    q, k, v, _ = make_qkv(1)
    report = evaluate_selection(get_selector("quest", budget=6, page_size=4), q, k, v)
    out = report.show()
    assert shown == [out] and isinstance(out, Table)


def test_views_reject_other_objects():
    with pytest.raises(ValueError, match="gen: must be a SparseGeneration"):
        generation_view(torch.zeros(1))
    with pytest.raises(ValueError, match="report: must be a SelectionReport"):
        report_view({"recall": 1.0})
