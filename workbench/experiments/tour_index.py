"""The tour's HTML index: one self-contained page (inline CSS, figures as data: URIs, no scripts, no CDN).

For each run: the notebook name, status, seconds, the parameters it was given, a link to the output
notebook (relative to the index, so the runs folder can be moved or zipped), the error if it failed, a
table of its value scraps and its figure scraps.
"""
from __future__ import annotations

import base64
import datetime as _dt
import html
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

from .runner import RunResult

_LONG = 240  # characters after which a value is folded into a <details>

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto; max-width: 64rem;
       padding: 0 1rem; color: #1d1d1f; background: #fff; }
h1 { font-size: 1.5rem; margin-bottom: .25rem; }
.summary { color: #555; margin-bottom: 1.5rem; }
section { border: 1px solid #ddd; border-radius: 6px; padding: .75rem 1rem; margin-bottom: 1.25rem; }
section h2 { font-size: 1.15rem; margin: 0 0 .4rem 0; }
.status { display: inline-block; padding: .05rem .5rem; border-radius: 4px; font-size: .85rem; color: #fff; }
.status.ok { background: #1a7f37; } .status.failed { background: #cf222e; }
.meta { color: #555; font-size: .9rem; margin-bottom: .5rem; }
code, pre { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: .85rem; }
pre.error { background: #fff0f0; border-left: 3px solid #cf222e; padding: .5rem; white-space: pre-wrap; }
table { border-collapse: collapse; margin: .5rem 0; }
th, td { border-bottom: 1px solid #eee; padding: .25rem .75rem .25rem 0; text-align: left; vertical-align: top; }
td.value { white-space: pre-wrap; word-break: break-word; }
figure { display: inline-block; margin: .5rem 1rem .5rem 0; }
figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-size: .85rem; color: #555; }
"""


def format_value(value: Any) -> str:
    """Short text of a scrap value: strings as they are, floats to 4 significant digits, the rest as JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, float):
        return f"{value:.4g}"
    return json.dumps(value, ensure_ascii=False)


def _value_cell(value: Any) -> str:
    text = format_value(value)
    if len(text) <= _LONG:
        return html.escape(text)
    return (f"<details><summary>{html.escape(text[:_LONG // 2])}…</summary>"
            f"{html.escape(text)}</details>")


def _link(target: str, index_dir: Path) -> str:
    rel = os.path.relpath(Path(target).resolve(), index_dir.resolve())
    return quote(rel.replace(os.sep, "/"))


def _section(result: RunResult, index_dir: Path) -> str:
    name = Path(result.notebook).name
    status = html.escape(result.status)
    parts = [f'<section id="{html.escape(Path(result.notebook).stem)}">',
             f'<h2>{html.escape(name)} <span class="status {status}">{status}</span></h2>']
    meta = [f"{result.seconds:.1f} s"]
    if result.output_path:
        meta.append(f'<a href="{_link(result.output_path, index_dir)}">output notebook</a>')
    if result.parameters:
        meta.append("parameters: <code>" + html.escape(json.dumps(result.parameters, ensure_ascii=False)) + "</code>")
    parts.append(f'<div class="meta">{" · ".join(meta)}</div>')
    if result.error:
        parts.append(f'<pre class="error">{html.escape(result.error)}</pre>')
    if result.scraps:
        rows = "".join(f'<tr><th>{html.escape(k)}</th><td class="value">{_value_cell(v)}</td></tr>'
                       for k, v in result.scraps.items())
        parts.append(f"<table><thead><tr><th>scrap</th><th>value</th></tr></thead><tbody>{rows}</tbody></table>")
    elif result.ok:
        parts.append('<div class="meta">no scraps recorded</div>')
    for fig_name, png in result.figures.items():
        data = base64.b64encode(png).decode("ascii")
        parts.append(f'<figure><img alt="{html.escape(fig_name)}" src="data:image/png;base64,{data}">'
                     f"<figcaption>{html.escape(fig_name)}</figcaption></figure>")
    parts.append("</section>")
    return "\n".join(parts)


def render_index(results: Sequence[RunResult], index_dir: Path, title: str = "workbench tour") -> str:
    """The index page as a string; links are relative to `index_dir`."""
    failed = sum(not r.ok for r in results)
    total = sum(r.seconds for r in results)
    when = _dt.datetime.now().strftime("%Y-%m-%d %H:%M:%S")
    plural = "" if len(results) == 1 else "s"
    summary = (f"{len(results)} notebook{plural}, {len(results) - failed} ok, {failed} failed, "
               f"{total:.1f} s in all · written {when}")
    body = "\n".join(_section(r, index_dir) for r in results)
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f"<style>{_CSS}</style></head>\n<body><h1>{html.escape(title)}</h1>"
            f'<div class="summary">{html.escape(summary)}</div>\n{body}\n</body></html>\n')


def write_index(results: Sequence[RunResult], index_path: str | Path, title: str = "workbench tour") -> Path:
    """Write the index page to `index_path` (folders created) and return the path."""
    index_path = Path(index_path)
    index_path.parent.mkdir(parents=True, exist_ok=True)
    index_path.write_text(render_index(results, index_path.parent, title), encoding="utf-8")
    return index_path
