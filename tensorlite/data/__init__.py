"""Text data: tokenizers (characters, byte-level BPE), corpora, and language-model batches."""

from .batching import TokenBatcher
from .corpus import corpus_files, default_corpus, describe_default_corpus, load_corpus
from .entropy import bigram_entropy, unigram_entropy
from .tokenizers import (
    SPLIT_PATTERN,
    BPETokenizer,
    CharTokenizer,
    Tokenizer,
    load_tokenizer,
    tokenizer_from_dict,
)

__all__ = [
    "BPETokenizer",
    "CharTokenizer",
    "SPLIT_PATTERN",
    "TokenBatcher",
    "Tokenizer",
    "corpus_files",
    "default_corpus",
    "describe_default_corpus",
    "load_corpus",
    "load_tokenizer",
    "tokenizer_from_dict",
    "bigram_entropy",
    "unigram_entropy",
]
