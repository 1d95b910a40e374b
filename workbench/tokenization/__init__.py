"""Tokenization: one protocol over HF tokenizers, tiktoken, SentencePiece and raw bytes (see protocol.py)."""

from workbench.tokenization.bytes import ByteTokenizer
from workbench.tokenization.hf import HFTokenizer
from workbench.tokenization.load import load_tokenizer
from workbench.tokenization.protocol import (
    InputTypeError,
    Offsets,
    Tokenizer,
    TokenizerBase,
    assign_offsets,
)
from workbench.tokenization.sentencepiece_adapter import SentencePieceTokenizer
from workbench.tokenization.tiktoken_adapter import TiktokenTokenizer

__all__ = [
    "ByteTokenizer",
    "HFTokenizer",
    "InputTypeError",
    "Offsets",
    "SentencePieceTokenizer",
    "TiktokenTokenizer",
    "Tokenizer",
    "TokenizerBase",
    "assign_offsets",
    "load_tokenizer",
]
