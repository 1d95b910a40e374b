"""The shared mixins: Showable results display their view statically and live; a broken view still reprs."""
from dataclasses import dataclass

from workbench.views import Showable, TokenStrip, View


@dataclass
class Result(Showable):
    pieces: list

    def view(self):
        return TokenStrip.from_pieces(self.pieces, title="result")


def test_showable_result_uses_its_view(capsys):
    result = Result(["a", "b"])
    assert result._repr_html_() == TokenStrip.from_pieces(["a", "b"], title="result").to_html()
    shown = result.show()  # outside a notebook, display() prints the text form
    assert isinstance(shown, TokenStrip) and "TokenStrip(result: 2 tokens)" in capsys.readouterr().out
    assert repr(result) == "Result(pieces=['a', 'b'])"  # the dataclass keeps its own text repr


def test_repr_falls_back_when_the_text_form_fails():
    class Broken(View):
        def to_text(self):
            raise RuntimeError("half-built")

    assert repr(Broken()).startswith("<")
