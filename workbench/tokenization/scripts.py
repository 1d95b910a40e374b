"""Unicode script of characters and tokens, for vocabulary script coverage (Qtok: Chelombitko et al. 2024,
"Qtok: A Comprehensive Framework for Evaluating Multilingual Tokenizer Quality in Large Language Models").

`unicodedata` has no Script property, so the script comes from the `regex` package's \\p{Script=...} classes
(Unicode's Scripts.txt as bundled with `regex`): one compiled alternation of the scripts listed below, the
matching group naming the script. Characters of a script not in the list are "Other"; "Common" (punctuation,
digits, spaces, symbols) and "Inherited" (combining marks) are Unicode's own values.

A token's script: its bytes are decoded as UTF-8; a token that is not valid UTF-8 on its own (a fragment of a
multi-byte character, as byte-level BPE makes) is "(partial UTF-8)"; otherwise the set of scripts of its
characters, ignoring Common and Inherited, decides: one script -> that script, several -> "(mixed)", none ->
"Common" (or "Inherited" if every character is a combining mark).
"""

from __future__ import annotations

from functools import lru_cache

import regex

SCRIPTS = (
    "Latin", "Greek", "Cyrillic", "Armenian", "Hebrew", "Arabic", "Syriac", "Thaana", "Nko", "Samaritan",
    "Devanagari", "Bengali", "Gurmukhi", "Gujarati", "Oriya", "Tamil", "Telugu", "Kannada", "Malayalam",
    "Sinhala", "Thai", "Lao", "Tibetan", "Myanmar", "Georgian", "Hangul", "Ethiopic", "Cherokee",
    "Canadian_Aboriginal", "Ogham", "Runic", "Tagalog", "Khmer", "Mongolian", "Limbu", "Tai_Le", "Buginese",
    "Tai_Tham", "Balinese", "Sundanese", "Batak", "Lepcha", "Ol_Chiki", "Hiragana", "Katakana", "Bopomofo",
    "Han", "Yi", "Lisu", "Vai", "Bamum", "Javanese", "Cham", "Tai_Viet", "Meetei_Mayek", "Tifinagh",
    "Coptic", "Glagolitic", "Gothic", "Braille", "Adlam", "Osage", "Hanifi_Rohingya", "Chakma", "Syloti_Nagri",
    "Saurashtra", "Kayah_Li", "Rejang", "Mende_Kikakui", "Cuneiform", "Egyptian_Hieroglyphs", "Common",
    "Inherited",
)
PARTIAL = "(partial UTF-8)"
MIXED = "(mixed)"
OTHER = "Other"
_NEUTRAL = {"Common", "Inherited"}

_PATTERN = regex.compile("|".join(f"(?P<{s}>\\p{{Script={s}}})" for s in SCRIPTS))


@lru_cache(maxsize=65536)
def char_script(ch: str) -> str:
    """Unicode script of one character (a name from SCRIPTS, or "Other")."""
    match = _PATTERN.match(ch)
    return match.lastgroup if match is not None else OTHER


def text_scripts(text: str) -> set[str]:
    """The scripts of the characters of `text`."""
    return {char_script(ch) for ch in text}


def token_script(piece: bytes) -> str:
    """Script class of a token's bytes (see the module docstring)."""
    try:
        text = piece.decode("utf-8")
    except UnicodeDecodeError:
        return PARTIAL
    scripts = text_scripts(text)
    own = scripts - _NEUTRAL
    if len(own) == 1:
        return own.pop()
    if own:
        return MIXED
    if scripts == {"Inherited"}:
        return "Inherited"
    return "Common"
