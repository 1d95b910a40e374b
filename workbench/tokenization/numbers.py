"""Number segmentation: reversible text transforms that fix how digits group, and what a tokenizer does.

Digits are ASCII 0-9 throughout; a "number" is a maximal run of them.

1. Digit grouping (Singh & Strouse 2024, "Tokenization counts: the impact of tokenization on arithmetic in
   frontier LLMs"). cl100k-style tokenizers cut digit runs into groups of 3 from the left ("1234567" ->
   123|456|7, left-to-right, L2R); the paper shows right-to-left grouping (1|234|567, aligned with place
   value) does better on arithmetic, and enforces it by writing thousands separators. `group_digits` inserts a
   separator between groups in either direction; `ungroup_digits` removes exactly those separators. The
   transform is reversible for any text that has no separator between two digits already (checked: such a
   text raises ValueError, since its original separators could not be told apart from inserted ones).

2. Triadic suffix tokenization (Chetverina 2025/2026, "A Triadic Suffix Tokenization Scheme for Numerical
   Reasoning"), the suffix-marker variant as we read it (the paper gives the scheme, no code): a number
   `I` or `I.F` (I, F digit runs) has its integer part cut into triads from the decimal point leftwards and
   its fraction into triads from the decimal point rightwards. Every integer triad is followed by a marker
   naming its order of magnitude, one distinct marker per power 10^(3k) (units, thousands, millions, ...);
   every fractional triad j (j = 1, 2, ...: 10^-3, 10^-6, ...) is followed by the fractional marker
   replicated j times. The decimal point is implied by the fractional markers and dropped. Digits are kept
   exactly (no padding, leading zeros stay), so decoding is exact:

       "1234567.891" -> "1" M2 "234" M1 "567" M0 "891" F        (M_k integer markers, F fraction marker)
       "3.14159"     -> "3" M0 "141" F "59" F F

   Coverage as in the paper: integer parts up to 10^18 .. 10^21 - 1 (7 markers, k = 0..6) and fractions to
   10^-15 (5 triads); a number outside that range is left unchanged. Default markers are Unicode private-use
   characters (U+E000 + k, fraction U+E100) so they cannot collide with ordinary text; a text that already
   contains a marker raises ValueError. For a model, the markers would be added as special tokens.
"""

from __future__ import annotations

from dataclasses import dataclass

import regex

_RUN = regex.compile(r"[0-9]+")


def _check_separator(separator: str) -> None:
    if not isinstance(separator, str) or not separator or regex.search(r"[0-9]", separator):
        raise ValueError(f"separator must be a non-empty string without digits, got {separator!r}")


def _check_direction(direction: str) -> None:
    if direction not in ("l2r", "r2l"):
        raise ValueError(f"direction must be 'l2r' or 'r2l', got {direction!r}")


def split_run(digits: str, direction: str, size: int = 3) -> list[str]:
    """`digits` cut into groups of `size`: 'l2r' from the left (last group short), 'r2l' from the right."""
    _check_direction(direction)
    if size < 1:
        raise ValueError(f"size must be >= 1, got {size}")
    if direction == "l2r":
        return [digits[i : i + size] for i in range(0, len(digits), size)]
    head = len(digits) % size or size
    return [digits[:head]] + [digits[i : i + size] for i in range(head, len(digits), size)]


def group_digits(text: str, direction: str = "r2l", *, size: int = 3, separator: str = ",") -> str:
    """Insert `separator` between groups of `size` digits in every digit run (see the module docstring)."""
    _check_separator(separator)
    _check_direction(direction)
    if regex.search(r"[0-9]" + regex.escape(separator) + r"[0-9]", text):
        raise ValueError(
            f"text already has separator {separator!r} between two digits, so grouping could not be undone; "
            "choose another separator"
        )
    return _RUN.sub(lambda m: separator.join(split_run(m.group(), direction, size)), text)


def ungroup_digits(text: str, *, separator: str = ",") -> str:
    """Inverse of `group_digits`: remove `separator` wherever it stands between two digits."""
    _check_separator(separator)
    return regex.sub(r"(?<=[0-9])" + regex.escape(separator) + r"(?=[0-9])", "", text)


@dataclass(frozen=True)
class TriadicMarkers:
    """Marker strings of the triadic suffix scheme: integer[k] follows the triad of 10^(3k); `fraction`
    repeated j times follows the j-th fractional triad (at most `max_fraction_triads`)."""

    integer: tuple[str, ...] = tuple(chr(0xE000 + k) for k in range(7))
    fraction: str = chr(0xE100)
    max_fraction_triads: int = 5

    def __post_init__(self) -> None:
        names = [*self.integer, self.fraction]
        if not self.integer or any(not isinstance(m, str) or not m or regex.search(r"[0-9.]", m) for m in names):
            raise ValueError("markers must be non-empty strings without digits or '.'")
        if len(set(names)) != len(names):
            raise ValueError(f"markers must be distinct, got {names}")
        for a in names:
            for b in names:
                if a != b and b.startswith(a):
                    raise ValueError(f"marker {a!r} is a prefix of {b!r}: markers must not overlap")

    def all(self) -> list[str]:
        return [*self.integer, self.fraction]


_NUMBER = regex.compile(r"([0-9]+)(?:\.([0-9]+))?")


def triadic_encode(text: str, markers: TriadicMarkers | None = None) -> str:
    """The triadic suffix form of every number in `text` (see the module docstring)."""
    markers = markers or TriadicMarkers()
    for m in markers.all():
        if m in text:
            raise ValueError(f"text already contains the triadic marker {m!r}, so encoding could not be undone")

    def encode(match: regex.Match) -> str:
        whole, frac = match.group(1), match.group(2)
        ints = split_run(whole, "r2l")
        fracs = split_run(frac, "l2r") if frac else []
        if len(ints) > len(markers.integer) or len(fracs) > markers.max_fraction_triads:
            return match.group()  # outside the covered range: left as is
        out = [g + markers.integer[len(ints) - 1 - k] for k, g in enumerate(ints)]
        out += [g + markers.fraction * (j + 1) for j, g in enumerate(fracs)]
        return "".join(out)

    return _NUMBER.sub(encode, text)


def triadic_decode(text: str, markers: TriadicMarkers | None = None) -> str:
    """Inverse of `triadic_encode`."""
    markers = markers or TriadicMarkers()
    ints = "|".join(regex.escape(m) for m in sorted(markers.integer, key=len, reverse=True))
    frac = regex.escape(markers.fraction)
    unit = regex.compile(rf"([0-9]{{1,3}})(?:({ints})|((?:{frac})+))")
    number = regex.compile(rf"(?:[0-9]{{1,3}}(?:{ints}|(?:{frac})+))+")
    index = {m: k for k, m in enumerate(markers.integer)}

    def decode(match: regex.Match) -> str:
        int_part, frac_part = [], []
        for u in unit.finditer(match.group()):
            digits, imark, fmarks = u.groups()
            if imark is not None:
                if frac_part:
                    raise ValueError(f"malformed triadic number {match.group()!r}: integer triad after fraction")
                int_part.append((index[imark], digits))
            else:
                frac_part.append((len(fmarks) // len(markers.fraction), digits))
        ks = [k for k, _ in int_part]
        if ks != list(range(len(ks) - 1, -1, -1)) or [j for j, _ in frac_part] != list(range(1, len(frac_part) + 1)):
            raise ValueError(f"malformed triadic number {match.group()!r}: magnitudes out of order")
        out = "".join(d for _, d in int_part)
        if frac_part:
            out += "." + "".join(d for _, d in frac_part)
        return out

    return number.sub(decode, text)
