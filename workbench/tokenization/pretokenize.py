"""Pre-tokenization for byte-level BPE: special tokens first, then a regex splits text into pre-tokens.

BPE merges never cross a pre-token boundary. The split mirrors HF `tokenizers`' pipeline exactly, so a
tokenizer trained here and exported as tokenizer.json (added tokens + `Split(pattern, "isolated")` +
`ByteLevel(use_regex=False)`) sees the same pre-tokens:

1. special tokens are cut out first, leftmost match first and, at one position, the longest (HF's added
   vocabulary does leftmost-longest matching);
2. each remaining part is split by the pattern with HF's "isolated" behaviour: every match is a pre-token,
   and so is every stretch of text between matches (Python's `findall` would silently drop those).

Patterns use the `regex` package (Unicode properties such as \\p{L}); HF compiles the same string with
Oniguruma. The two agree on every character assigned in Python 3.11's Unicode database (checked over all
code points with the two patterns below); characters assigned only in later Unicode versions can be
classified differently, because the engines carry different Unicode tables.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import regex

from workbench.tokenization.protocol import InputTypeError

GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
"""GPT-2's pre-tokenizer (Radford et al. 2019): contractions, letters, digits, other symbols, whitespace."""

CL100K_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
"""The cl100k-style pattern as Llama-3's tokenizer.json writes it (cl100k_base without possessive
quantifiers): case-insensitive contractions, one leading non-letter glued to a word, digits in groups of at
most 3 (left to right), symbols with trailing newlines, newline runs, whitespace. The default."""

DEFAULT_PATTERN = CL100K_PATTERN


def compile_pattern(pattern: str, param: str = "pattern") -> regex.Pattern:
    """Compile a pre-tokenizer pattern, turning a syntax error into a ValueError naming `param`."""
    if not isinstance(pattern, str) or not pattern:
        raise ValueError(f"{param} must be a non-empty regular expression string, got {pattern!r}")
    try:
        compiled = regex.compile(pattern)
    except regex.error as err:
        raise ValueError(f"{param} is not a valid regular expression ({err}): {pattern!r}") from None
    return compiled


def check_special_tokens(special_tokens: Sequence[str], param: str = "special_tokens") -> list[str]:
    """Special tokens as a list of distinct non-empty strings (order kept: it decides their ids)."""
    if isinstance(special_tokens, (str, bytes)):
        raise InputTypeError(f"{param} must be a sequence of strings, not a single string {special_tokens!r}")
    out = list(special_tokens)
    for s in out:
        if not isinstance(s, str) or not s:
            raise ValueError(f"{param} must be non-empty strings, got {s!r}")
    if len(set(out)) != len(out):
        raise ValueError(f"{param} must be distinct, got {out}")
    return out


class Pretokenizer:
    """Splits text into (special token | pre-token) pieces; see the module docstring."""

    def __init__(self, pattern: str = DEFAULT_PATTERN, special_tokens: Sequence[str] = ()) -> None:
        self.pattern = pattern
        self.special_tokens = check_special_tokens(special_tokens)
        self._regex = compile_pattern(pattern)
        ordered = sorted(self.special_tokens, key=len, reverse=True)
        self._specials = regex.compile("|".join(map(regex.escape, ordered))) if ordered else None

    def split(self, text: str) -> list[str]:
        """Pre-tokens of `text` (no special-token handling): the pattern's matches and the gaps between them."""
        if not self._regex.groups:  # findall gives whole matches only for a pattern without groups
            pieces = self._regex.findall(text)
            if sum(map(len, pieces)) == len(text) and "" not in pieces:  # common: the matches tile the text
                return pieces
        pieces, pos = [], 0
        for match in self._regex.finditer(text):
            if match.start() > pos:
                pieces.append(text[pos : match.start()])
            if match.end() > match.start():
                pieces.append(match.group())
            pos = match.end()
        if pos < len(text):
            pieces.append(text[pos:])
        return pieces

    def split_specials(self, text: str) -> Iterator[tuple[str, bool]]:
        """(part, is_special) in order: special-token occurrences and the ordinary text between them."""
        if self._specials is None:
            if text:
                yield text, False
            return
        pos = 0
        for match in self._specials.finditer(text):
            if match.start() > pos:
                yield text[pos : match.start()], False
            yield match.group(), True
            pos = match.end()
        if pos < len(text):
            yield text[pos:], False

    def pretokens(self, text: str) -> Iterator[str]:
        """All ordinary pre-tokens of `text` (special tokens skipped), e.g. for counting words in training."""
        for part, special in self.split_specials(text):
            if not special:
                yield from self.split(part)
