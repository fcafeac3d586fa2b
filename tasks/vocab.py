"""The SentencePiece vocabulary of PaLI's text side (mT5's, or the small shipped one).

`get_vocabulary(path)` loads any SentencePiece model readable by `tf.io.gfile`
(local, gs://, ...): for real runs mT5's `sentencepiece.model` (250,000 pieces;
with the 100 sentinel ids seqio appends, `batch.MT5_VOCAB_SIZE` = 250,112 ids).

Without a path it loads `tasks/data/pali_synthetic_spm.model`, a small
multilingual SentencePiece (BPE) model trained deterministically by
`python -m pali_pax.tasks.build_vocab` from the synthetic tasks' text in
en/fr/de/es/zh/hi/ar/ru plus every prompt in every prompt language:
2,000 pieces (pad, eos, unk ids as mT5's, see `pali_pax.core.batch`; 256 byte-fallback pieces so any
script encodes; numbers unsplit) + 100 sentinel ids = 2,100 ids. Every synthetic
word is one or two pieces; nothing synthetic maps to unk.

Sentinel `<extra_id_k>` has id `vocab_size - 1 - k` and can be written in text
('... <extra_id_0>'); `decode` writes it back.
"""

import functools
import os

import seqio
import tensorflow as tf
from google.protobuf.message import DecodeError

from pali_pax.core import batch as batch_lib
from pali_pax.core import errors

DEFAULT_VOCAB_PATH = os.path.join(os.path.dirname(__file__), 'data', 'pali_synthetic_spm.model')
DEFAULT_EXTRA_IDS = 100
SYNTHETIC_VOCAB_SIZE = 2100  # 2,000 pieces + 100 sentinels (the shipped model)


def get_vocabulary(
  path: str | None = None, extra_ids: int = DEFAULT_EXTRA_IDS
) -> seqio.SentencePieceVocabulary:
  """The seqio vocabulary of the SentencePiece model at `path` (default: the shipped one).

  Args:
    path: a SentencePiece model file (any tf.io.gfile path); None = the small
      synthetic model in tasks/data/.
    extra_ids: number of sentinel ids appended after the pieces (mT5: 100).

  Returns:
    A cached `seqio.SentencePieceVocabulary` (one instance per (path, extra_ids),
    so seqio tasks sharing a path compare equal cheaply).

  Raises:
    FileNotFoundError: naming the path, if there is no file there.
    FileFormatError: naming the path, if the file is not a SentencePiece
      model with mT5's pad / eos ids.
  """
  path = DEFAULT_VOCAB_PATH if path is None else os.fspath(path)
  if not tf.io.gfile.exists(path) or tf.io.gfile.isdir(path):
    raise FileNotFoundError(
      f'SentencePiece model not found: {path!r} (give the path of e.g. the mT5 '
      f"'sentencepiece.model', or None for the shipped synthetic vocabulary)"
    )
  return _load(path, int(extra_ids))


@functools.lru_cache(maxsize=16)
def _load(path: str, extra_ids: int) -> seqio.SentencePieceVocabulary:
  vocab = seqio.SentencePieceVocabulary(path, extra_ids=extra_ids)
  # Load now so a corrupt file fails here, not inside tf.data. The protobuf parser raises
  # DecodeError on damaged bytes, sentencepiece RuntimeError on a model it rejects.
  with errors.parsing(path, 'SentencePiece model', (DecodeError, RuntimeError)):
    _ = vocab.tokenizer
  if (vocab.pad_id, vocab.eos_id) != (batch_lib.PAD_ID, batch_lib.EOS_ID):
    raise errors.FileFormatError(
      f'{path!r}: pad/eos ids are {vocab.pad_id}/{vocab.eos_id}; PaLI (mT5) needs {batch_lib.PAD_ID}/{batch_lib.EOS_ID}'
    )
  return vocab


def sentinel_id(vocab: seqio.Vocabulary, k: int) -> int:
  """Id of `<extra_id_k>`: counted down from the end of the vocabulary."""
  if not 0 <= k < vocab.extra_ids:
    raise errors.InputValidationError(
      f'sentinel {k} out of range: the vocabulary has {vocab.extra_ids} extra ids'
    )
  return vocab.vocab_size - 1 - k


# One TF SentencePiece tokenizer per (graph, vocabulary): each tokenizer seqio makes
# (`encode_tf`) puts the whole model (~270 KB for the shipped one, MBs for mT5's)
# into the graph as a new op whose kernel parses it again when an iterator starts.
# Kept in a collection of the graph itself, so it lives exactly as long as the graph
# (a table keyed by graph would keep every traced graph alive: the tokenizer's
# resource tensor refers to it). Entries are (vocab, tokenizer) tuples: a function
# traced inside another starts with a copy of the outer list and may capture from it.
_COLLECTION = 'pali_pax_sentencepiece_tokenizers'


def encode_tf(vocab: seqio.Vocabulary, texts: tf.Tensor) -> tf.Tensor | tf.RaggedTensor:
  """`vocab.encode_tf(texts)` with one tokenizer op per graph, however many calls.

  Args:
    vocab: the vocabulary; a `seqio.SentencePieceVocabulary` shares its tokenizer,
      any other vocabulary is called as is.
    texts: tf.string [] or [n].

  Returns:
    int ids [T], or a ragged [n, None]: the same values as `vocab.encode_tf`.
  """
  if not isinstance(vocab, seqio.SentencePieceVocabulary) or tf.executing_eagerly():
    return vocab.encode_tf(texts)  # eager: nothing is traced, seqio's own path
  entries = tf.compat.v1.get_default_graph().get_collection_ref(_COLLECTION)
  tokenizer = next((tok for v, tok in entries if v is vocab), None)
  if tokenizer is None:
    tokenizer = vocab.tf_tokenizer
    entries.append((vocab, tokenizer))
  return tokenizer.tokenize(texts)
