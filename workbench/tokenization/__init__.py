"""Tokenization: one protocol over HF tokenizers, tiktoken, SentencePiece and raw bytes (see protocol.py),
the project's own byte-level BPE trainer and encoder, StochasTok, and tokenizer metrics (`metrics`)."""

from workbench.tokenization import charbench, metrics
from workbench.tokenization.bpe import BPETokenizer
from workbench.tokenization.bpe_train import train_bpe, train_bpe_from_bytes
from workbench.tokenization.byte_probs import ByteLevelLM
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
from workbench.tokenization.stochastok import StochasTok
from workbench.tokenization.tiktoken_adapter import TiktokenTokenizer
from workbench.tokenization.token_healing import naive_generate, token_healing_generate

__all__ = [
    "BPETokenizer",
    "ByteLevelLM",
    "ByteTokenizer",
    "HFTokenizer",
    "InputTypeError",
    "Offsets",
    "SentencePieceTokenizer",
    "StochasTok",
    "TiktokenTokenizer",
    "Tokenizer",
    "TokenizerBase",
    "assign_offsets",
    "charbench",
    "load_tokenizer",
    "metrics",
    "naive_generate",
    "token_healing_generate",
    "train_bpe",
    "train_bpe_from_bytes",
]
