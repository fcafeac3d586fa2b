"""Shared pieces of the data readers: the raw example schema, file loading, dataset building.

Every reader in `pali_pax.tasks.readers*` yields examples with exactly the keys of
`RAW_FEATURES` (see `pali_pax.tasks.readers` for the schema). The JSON/JSONL readers
first turn their files into a list of `Record`s (cheap Python metadata: the image is
still a path) and then `records_to_dataset` builds a `tf.data.Dataset` that reads the
image bytes lazily, so a whole COCO split never sits in memory as bytes.

Loading is lazy: files are opened when a split's dataset is first requested, not when
the source is built, so registering seqio tasks for data that is not on this machine
does not fail at import time. Parsed records are cached per split.
"""

from __future__ import annotations

import dataclasses
import json
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import numpy as np
import seqio
import tensorflow as tf

# The one raw schema every reader emits (name -> (dtype, shape)).
RAW_FEATURES: dict[str, tuple[tf.DType, list[int | None]]] = {
  'image': (tf.string, []),
  'image_id': (tf.string, []),
  'example_id': (tf.string, []),
  'lang': (tf.string, []),
  'question': (tf.string, []),
  'texts': (tf.string, [None]),
}

RAW_OUTPUT_SIGNATURE = {
  k: tf.TensorSpec(shape, dtype) for k, (dtype, shape) in RAW_FEATURES.items()
}


class DataFormatError(ValueError):
  """A data file exists but does not have the expected structure (names file and problem)."""


@dataclasses.dataclass(frozen=True)
class Record:
  """One raw example before the image bytes are read.

  Attributes:
    image_path: full path of the encoded image; '' for a text-only example.
    image_id: dataset image id, as a string.
    example_id: id unique within the split (question id for VQA, image id for
      captions, '<image key>/<lang>' for Crossmodal-3600); what result files need.
    lang: language code of `question` and `texts`.
    question: the question ('' for captioning).
    texts: all reference captions / answers, in file order.
  """

  image_path: str
  image_id: str
  example_id: str
  lang: str
  question: str
  texts: tuple[str, ...]


def require_file(path: str, what: str) -> None:
  """Raises FileNotFoundError naming `path` (and what it should hold) unless it is a file."""
  if not tf.io.gfile.exists(path) or tf.io.gfile.isdir(path):
    raise FileNotFoundError(f'{what} not found: {path!r}')


def require_dir(path: str, what: str) -> None:
  """Raises FileNotFoundError naming `path` unless it is a directory."""
  if not tf.io.gfile.isdir(path):
    raise FileNotFoundError(f'{what} (a directory) not found: {path!r}')


def load_json(path: str, what: str) -> Any:
  """Reads one JSON document; errors name the file and the parse position."""
  require_file(path, what)
  with tf.io.gfile.GFile(path, 'r') as f:
    text = f.read()
  try:
    return json.loads(text)
  except json.JSONDecodeError as e:
    raise DataFormatError(f'{what} {path!r} is not valid JSON: {e}') from e


def iter_jsonl(path: str, what: str) -> Iterator[tuple[int, dict[str, Any]]]:
  """Yields (line number, object) per non-empty line of a JSON Lines file.

  Errors name the file and the line.
  """
  require_file(path, what)
  with tf.io.gfile.GFile(path, 'r') as f:
    for lineno, line in enumerate(f, start=1):
      if not line.strip():
        continue
      try:
        row = json.loads(line)
      except json.JSONDecodeError as e:
        raise DataFormatError(f'{what} {path!r} line {lineno} is not valid JSON: {e}') from e
      if not isinstance(row, dict):
        raise DataFormatError(
          f'{what} {path!r} line {lineno}: expected a JSON object, got {type(row).__name__}'
        )
      yield lineno, row


def load_jsonl(path: str, what: str) -> list[dict[str, Any]]:
  """Reads JSON Lines (one object per non-empty line); errors name the file and line."""
  return [row for _, row in iter_jsonl(path, what)]


def get_field(obj: Any, key: str, path: str, where: str, types: type | tuple[type, ...]) -> Any:
  """`obj[key]`, checked to exist and have one of `types`; errors name file and location."""
  if not isinstance(obj, dict):
    raise DataFormatError(f'{path!r}: {where} should be a JSON object, got {type(obj).__name__}')
  if key not in obj:
    raise DataFormatError(f'{path!r}: {where} has no {key!r} field (keys: {sorted(obj)[:12]})')
  value = obj[key]
  if not isinstance(value, types):
    names = types.__name__ if isinstance(types, type) else '/'.join(t.__name__ for t in types)
    raise DataFormatError(
      f'{path!r}: {where}[{key!r}] should be {names}, got {type(value).__name__}'
    )
  return value


def records_to_dataset(
  records: Sequence[Record], shuffle: bool = False, seed: int | None = None
) -> tf.data.Dataset:
  """Builds the raw-schema dataset; image files are read inside the pipeline.

  Args:
    records: the examples, in file order.
    shuffle: permute the example order (the in-memory index plays the role that
      file shuffling plays for sharded sources).
    seed: seed of that permutation (None: nondeterministic).

  Returns:
    A dataset of dicts with the keys and dtypes of `RAW_FEATURES`. A missing image
    file surfaces as `tf.errors.NotFoundError` naming the file when it is reached.
  """
  order = np.arange(len(records))
  if shuffle:
    np.random.default_rng(seed).shuffle(order)
  recs = [records[i] for i in order]
  columns = {
    'image_path': tf.constant([r.image_path for r in recs], tf.string, shape=[len(recs)]),
    'image_id': tf.constant([r.image_id for r in recs], tf.string, shape=[len(recs)]),
    'example_id': tf.constant([r.example_id for r in recs], tf.string, shape=[len(recs)]),
    'lang': tf.constant([r.lang for r in recs], tf.string, shape=[len(recs)]),
    'question': tf.constant([r.question for r in recs], tf.string, shape=[len(recs)]),
    # Ragged so every example keeps all its references (10 VQA answers, 5+ captions).
    'texts': tf.RaggedTensor.from_row_lengths(
      tf.constant([t for r in recs for t in r.texts], tf.string),
      tf.constant([len(r.texts) for r in recs], tf.int64, shape=[len(recs)]),
    ),
  }

  def read(ex: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
    path = ex.pop('image_path')
    image = tf.cond(
      tf.equal(path, ''), lambda: tf.constant(b'', tf.string), lambda: tf.io.read_file(path)
    )
    texts = ex['texts']
    if isinstance(texts, tf.RaggedTensor):  # slices of a ragged column may stay ragged
      texts = texts.to_tensor()
    out = dict(ex, image=image, texts=tf.reshape(texts, [-1]))
    return {k: out[k] for k in RAW_FEATURES}

  ds = tf.data.Dataset.from_tensor_slices(columns)
  # Deterministic so that a given seed always yields the same order.
  return ds.map(read, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


class LazyRecords:
  """Loads (once per split, thread-safely) the records of a split from a loader function."""

  def __init__(self, loader: Callable[[str], list[Record]]) -> None:
    self._loader = loader
    self._cache: dict[str, list[Record]] = {}
    self._lock = threading.Lock()

  def __call__(self, split: str) -> list[Record]:
    with self._lock:
      if split not in self._cache:
        self._cache[split] = self._loader(split)
      return self._cache[split]


def records_source(
  loader: Callable[[str], list[Record]], splits: Iterable[str]
) -> seqio.FunctionDataSource:
  """A seqio source over `loader(split) -> records`, loaded lazily on first use."""
  lazy = LazyRecords(loader)
  split_names = list(splits)

  def dataset_fn(split: str, shuffle_files: bool, seed: int | None = None) -> tf.data.Dataset:
    if split not in split_names:
      raise ValueError(f'unknown split {split!r}; this source has {split_names}')
    return records_to_dataset(lazy(split), shuffle=shuffle_files, seed=seed)

  return seqio.FunctionDataSource(dataset_fn, splits=split_names)


def join_path(folder: str, *names: str) -> str:
  """Image path inside `folder`; empty parts are skipped (os.path.join works for gs:// too)."""
  return os.path.join(folder, *[n for n in names if n])
