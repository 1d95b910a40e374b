"""TokenStrip: construction, offsets, state, front-end messages, static HTML and text forms."""
import re

import pytest
from IPython.core.formatters import DisplayFormatter

from workbench.resources import resource_dir
from workbench.tokenization.bytes import ByteTokenizer
from workbench.views import Token, TokenStrip
from workbench.views.html import DIVERGING, SEQUENTIAL
from workbench.views.token_strip import display_text

from .helpers import URL, frontend_update


def strip(**options):
    return TokenStrip.from_pieces(["Hello", ",", " world", "!"], ids=[10, 11, 12, 13], **options)


def test_from_pieces_offsets_are_running_byte_positions():
    s = TokenStrip.from_pieces(["ab", "\u00e9", b"\xe2\x80"])
    assert [(t.start, t.end) for t in s.tokens] == [(0, 2), (2, 4), (4, 6)]
    assert [t.bytes for t in s.tokens] == [b"ab", b"\xc3\xa9", b"\xe2\x80"]
    assert [t.id for t in s.tokens] == [None, None, None]


def test_display_text_shows_whitespace_and_invalid_bytes():
    assert display_text(b" a\n\t") == "\u00b7a\u21b5\u2192"
    assert display_text(b"\xe2\x80") == "\\xe2\\x80"
    assert display_text(b"") == "\u2205"


def test_from_text_matches_tokenizer_and_covers_text(bpe):
    text = "Hello world \u00e9!"
    s = TokenStrip.from_text(bpe, text)
    assert [t.id for t in s.tokens] == bpe.encode(text)
    assert b"".join(t.bytes for t in s.tokens) == text.encode("utf-8")
    assert [t.bytes for t in s.tokens] == [bpe.token_bytes(i) for i in bpe.encode(text)]
    assert s.title == bpe.name


def test_from_ids_uses_token_bytes():
    tok = ByteTokenizer()
    s = TokenStrip.from_ids(tok, [104, 105, 256])
    assert [t.bytes for t in s.tokens] == [b"h", b"i", tok.token_bytes(256)]
    assert s.tokens[2].start == 2


def test_bad_input_is_rejected_with_the_parameter_name():
    with pytest.raises(ValueError, match="scores: expected 4 values"):
        strip(scores=[1.0])
    with pytest.raises(ValueError, match="ids: expected 2"):
        TokenStrip.from_pieces(["a", "b"], ids=[1])
    with pytest.raises(ValueError, match="tokens: item 0 must be a Token"):
        TokenStrip(["a"])
    with pytest.raises(ValueError, match="scale"):
        strip(scale="nope")
    with pytest.raises(ValueError, match="text: must be a str"):
        TokenStrip.from_text(ByteTokenizer(), b"bytes")


def test_selected_is_validated_and_exposed():
    s = strip()
    assert s.selected == -1 and s.selected_token is None
    s.selected = 2
    assert s.selected_token == Token(12, b" world", 6, 12)
    with pytest.raises(ValueError, match=r"selected: must be -1 \(none\) or a token index in \[0, 4\)"):
        s.selected = 4


def test_click_from_front_end_sets_selected():
    s = strip()
    frontend_update(s, selected=1)
    assert s.selected == 1
    frontend_update(s, selected=-1)
    assert s.selected == -1
    frontend_update(s, selected=99)  # invalid: rejected, state unchanged
    assert s.selected == -1


def test_synced_state_is_html_and_selection_only():
    s = strip()
    state = s.get_state()
    assert state["html"] == s.html_body() and state["selected"] == -1
    assert "tokens" not in state
    before = s.html
    s.selected = 2  # the front-end paints the selection; the body is not re-sent
    assert s.html == before
    s.tokens = s.tokens[:2]
    assert s.html != before and "world" not in s.html


def test_static_html_is_deterministic_self_contained_and_has_the_data():
    s = strip(scores=[0.0, 1.0, 2.0, 4.0], score_label="surprisal", title="demo <t>")
    html = s._repr_html_()
    assert html == strip(scores=[0.0, 1.0, 2.0, 4.0], score_label="surprisal", title="demo <t>")._repr_html_()
    assert html != strip()._repr_html_()
    assert not URL.search(html) and "<script" not in html
    assert "demo &lt;t&gt;" in html
    assert "\u00b7world" in html
    assert "#2  id 12  bytes 20 77 6f 72 6c 64  offsets [6, 12)  surprisal 2" in html
    assert f"background-color:{SEQUENTIAL[-1]}" in html and f"background-color:{SEQUENTIAL[0]}" in html
    assert len(re.findall(r'class="wb-token[ "]', html)) == 4


def test_negative_scores_use_the_diverging_scale():
    html = strip(scores=[-2.0, 0.0, 1.0, 2.0]).to_html()
    assert f"background-color:{DIVERGING[0]}" in html and f"background-color:{DIVERGING[-1]}" in html


def test_markup_in_tokens_is_escaped():
    html = TokenStrip.from_pieces(["<script>", "&"]).to_html()
    assert "<script>" not in html.replace("<style>", "") and "&lt;script&gt;" in html and "&amp;" in html


def test_text_repr():
    s = strip(scores=[0.5, 1.0, 2.0, 3.0])
    s.selected = 1
    assert repr(s) == "TokenStrip(4 tokens, selected #1, score 0.5..3)\nHello|,|\u00b7world|!"


def test_notebook_display_bundle_has_widget_static_html_and_text():
    s = strip()
    data, _ = DisplayFormatter().format(s)
    assert "application/vnd.jupyter.widget-view+json" in data
    assert data["text/html"] == s.to_html()
    assert data["text/plain"].startswith("TokenStrip(")


def test_front_end_code_comes_from_the_widgets_folder():
    s = strip()
    assert s._esm == (resource_dir("widgets") / "token_strip.js").read_text()
    assert s._css == (resource_dir("widgets") / "workbench.css").read_text()
