"""Shared pieces of the data readers: the raw example schema, file loading, dataset building.

Every reader in `pali_pax.tasks.readers*` yields examples with exactly the keys of
`RAW_FEATURES` (see `pali_pax.tasks.readers` for the schema). The JSON/JSONL readers
first turn their files into a list of `Record`s (cheap Python metadata: the image is
still a path) and then `records_to_dataset` builds a `tf.data.Dataset` that reads the
image bytes lazily, so a whole COCO split never sits in memory as bytes.

Loading is lazy: files are opened when a split's dataset is first requested, not when
the source is built, so registering seqio tasks for data that is not on this machine
does not fail at import time. Parsed records are cached per split.

Confined data: an image path taken from an annotation file (COCO `file_name`,
TextVQA `image_id`, XM3600 `image/key`, VQA `data_subtype`, ...) must stay inside
the data folder given to the reader: an absolute path, a URL or one whose `..`
parts climb out of it is a `DataFormatError` naming the annotation file and the
entry, unless the reader is given `allow_outside_data_dir=True`. Symlinks inside the
data folder are followed (they were put there by whoever owns the folder; the
annotation text is what is checked). When a split is loaded, every image it names
must exist (checked with one directory listing per folder): otherwise a
`DataFormatError` names the missing files and their entries. Annotation files must
be UTF-8; other bytes are a `DataFormatError` naming the file, line and byte offset.
"""

from __future__ import annotations

import dataclasses
import json
import os
import posixpath
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import numpy as np
import seqio
import tensorflow as tf

from pali_pax.core import errors

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


class DataFormatError(errors.FileFormatError):
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
    origin: where the record comes from, for error messages: the annotation file
      and entry, e.g. "'captions.json' images[3]".

  Raises:
    DataFormatError: a text that cannot be written as UTF-8 (a lone surrogate
      from a JSON \\ud800 escape), or an image path holding a NUL byte.
  """

  image_path: str
  image_id: str
  example_id: str
  lang: str
  question: str
  texts: tuple[str, ...]
  origin: str = ''

  def __post_init__(self) -> None:
    if '\0' in self.image_path:
      raise DataFormatError(f'{self.origin}: image path {self.image_path!r} holds a NUL byte')
    for name in ('image_path', 'image_id', 'example_id', 'lang', 'question'):
      _check_utf8(getattr(self, name), f'{self.origin}: {name}')
    for i, text in enumerate(self.texts):
      _check_utf8(text, f'{self.origin}: texts[{i}]')


def _check_utf8(text: str, where: str) -> None:
  try:
    text.encode('utf-8')
  except UnicodeEncodeError as e:
    raise DataFormatError(f'{where} {text!r} is not valid Unicode ({e.reason})') from e


def require_file(path: str, what: str) -> None:
  """Raises MissingFileError naming `path` (and what it should hold) unless it is a file."""
  if not tf.io.gfile.exists(path) or tf.io.gfile.isdir(path):
    raise errors.MissingFileError(f'{what} not found: {path!r}')


def require_dir(path: str, what: str) -> None:
  """Raises MissingFileError naming `path` unless it is a directory."""
  if not tf.io.gfile.isdir(path):
    raise errors.MissingFileError(f'{what} (a directory) not found: {path!r}')


def read_text(path: str, what: str) -> str:
  """The UTF-8 text of a file; DataFormatError naming the file, line and offset otherwise."""
  require_file(path, what)
  with tf.io.gfile.GFile(path, 'rb') as f:
    data = f.read()
  try:
    return data.decode('utf-8')
  except UnicodeDecodeError as e:
    line = data.count(b'\n', 0, e.start) + 1
    raise DataFormatError(
      f'{what} {path!r} is not UTF-8: line {line}, byte offset {e.start} ({e.reason})'
    ) from e


def _parse_json(text: str, where: str) -> Any:
  try:
    return json.loads(text)
  # ValueError: bad JSON, or an integer too long to convert; RecursionError: deep nesting.
  except (ValueError, RecursionError) as e:
    raise DataFormatError(f'{where} is not valid JSON: {type(e).__name__}: {e}') from e


def load_json(path: str, what: str) -> Any:
  """Reads one JSON document; errors name the file and the parse position."""
  return _parse_json(read_text(path, what), f'{what} {path!r}')


def iter_jsonl(path: str, what: str) -> Iterator[tuple[int, dict[str, Any]]]:
  """Yields (line number, object) per non-empty line of a JSON Lines file.

  Errors name the file and the line.
  """
  # Split on '\n' only: str.splitlines would also split inside strings at U+2028 etc.
  for lineno, line in enumerate(read_text(path, what).split('\n'), start=1):
    if not line.strip():
      continue
    row = _parse_json(line, f'{what} {path!r} line {lineno}')
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


def _columns(records: Sequence[Record]) -> dict[str, tf.Tensor | tf.RaggedTensor]:
  """The records as columns: one [N] string tensor per field, `texts` ragged [N, None]."""
  n = len(records)
  return {
    'image_path': tf.constant([r.image_path for r in records], tf.string, shape=[n]),
    'image_id': tf.constant([r.image_id for r in records], tf.string, shape=[n]),
    'example_id': tf.constant([r.example_id for r in records], tf.string, shape=[n]),
    'lang': tf.constant([r.lang for r in records], tf.string, shape=[n]),
    'question': tf.constant([r.question for r in records], tf.string, shape=[n]),
    # Ragged so every example keeps all its references (10 VQA answers, 5+ captions).
    'texts': tf.RaggedTensor.from_row_lengths(
      tf.constant([t for r in records for t in r.texts], tf.string),
      tf.constant([len(r.texts) for r in records], tf.int64, shape=[n]),
    ),
  }


def _read(ex: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
  """One row of `_columns` -> raw-schema example (reads the image file; '' = text-only)."""
  ex = dict(ex)
  path = ex.pop('image_path')
  image = tf.cond(
    tf.equal(path, ''), lambda: tf.constant(b'', tf.string), lambda: tf.io.read_file(path)
  )
  texts = ex['texts']
  if isinstance(texts, tf.RaggedTensor):  # slices of a ragged column may stay ragged
    texts = texts.to_tensor()
  out = dict(ex, image=image, texts=tf.reshape(texts, [-1]))
  return {k: out[k] for k in RAW_FEATURES}


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
    A dataset of dicts with the keys and dtypes of `RAW_FEATURES`. (The sources
    check that the image files exist when a split is loaded, `check_images_exist`.)
  """
  order = np.arange(len(records))
  if shuffle:
    np.random.default_rng(seed).shuffle(order)
  ds = tf.data.Dataset.from_tensor_slices(_columns([records[i] for i in order]))
  # Deterministic so that a given seed always yields the same order.
  return ds.map(_read, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


class LazyRecords:
  """Loads (once per split, thread-safely) the records of a split; checks their images exist."""

  def __init__(self, loader: Callable[[str], list[Record]]) -> None:
    self._loader = loader
    self._cache: dict[str, list[Record]] = {}
    self._lock = threading.Lock()

  def __call__(self, split: str) -> list[Record]:
    with self._lock:
      if split not in self._cache:
        records = self._loader(split)
        check_images_exist(records)
        self._cache[split] = records
      return self._cache[split]


class RecordsSource(seqio.FunctionDataSource):
  """seqio source over `loader(split) -> records`, loaded lazily on first use.

  Besides streaming (`get_dataset`), it gives random access by record index
  (`num_examples`, `example_at`), which the step-indexed train input uses.
  """

  def __init__(self, loader: Callable[[str], list[Record]], splits: Iterable[str]) -> None:
    self._records = LazyRecords(loader)
    self._split_names = list(splits)
    self._column_cache: dict[str, dict] = {}
    super().__init__(self._dataset_fn, splits=self._split_names)

  def _check_split(self, split: str) -> None:
    if split not in self._split_names:
      raise errors.ConfigError(f'unknown split {split!r}; this source has {self._split_names}')

  def _dataset_fn(
    self, split: str, shuffle_files: bool, seed: int | None = None
  ) -> tf.data.Dataset:
    self._check_split(split)
    return records_to_dataset(self._records(split), shuffle=shuffle_files, seed=seed)

  def num_examples(self, split: str) -> int:
    """Records in `split` (loads its files on first use)."""
    self._check_split(split)
    return len(self._records(split))

  def example_at(self, split: str, index: tf.Tensor) -> dict[str, tf.Tensor]:
    """Raw-schema example of record `index` (int64 [], in [0, num_examples)) of `split`."""
    self._check_split(split)
    if split not in self._column_cache:
      with tf.init_scope():  # eager constants, captured by every trace that reads them
        self._column_cache[split] = _columns(self._records(split))
    cols = self._column_cache[split]
    return _read({k: v[index] for k, v in cols.items()})


def records_source(loader: Callable[[str], list[Record]], splits: Iterable[str]) -> RecordsSource:
  """A seqio source over `loader(split) -> records`, loaded lazily on first use."""
  return RecordsSource(loader, splits)


def _is_absolute(name: str) -> bool:
  """An absolute local path or a URL (gs://...): a name that ignores the folder it is joined to."""
  return name.startswith(('/', '\\')) or '://' in name


def data_path(
  data_dir: str, names: Sequence[str], origin: str, allow_outside_data_dir: bool = False
) -> str:
  """`data_dir`/names... for names read from an annotation file, confined to `data_dir`.

  Args:
    data_dir: the data (image) folder given to the reader.
    names: path parts from the annotation file; empty parts are skipped.
    origin: annotation file and entry, for the error message.
    allow_outside_data_dir: accept absolute paths, URLs and `..` climbing out.

  Raises:
    DataFormatError: naming `origin`, when the path is empty or leaves `data_dir`.
  """
  parts = [n for n in names if n]
  if not parts:
    raise DataFormatError(f'{origin}: the image path is empty')
  rel = posixpath.join(*parts)
  if not allow_outside_data_dir and (
    any(_is_absolute(n) for n in parts) or posixpath.normpath(rel).split('/')[0] == '..'
  ):
    raise DataFormatError(
      f'{origin}: image path {rel!r} is outside the data folder {data_dir!r} (absolute, a URL '
      'or climbing out with ..); pass allow_outside_data_dir=True (experiments: '
      '--fdl.ALLOW_OUTSIDE_DATA_DIR=True) to read it anyway'
    )
  # os.path.join restarts at an absolute part (allowed only with allow_outside_data_dir).
  return os.path.join(data_dir, *parts)


def check_images_exist(records: Sequence[Record], shown: int = 3) -> None:
  """Raises DataFormatError naming the entries whose image file is missing.

  One directory listing per folder (cheap on GCS too), not one stat per image.
  """
  by_dir: dict[str, list[Record]] = {}
  for r in records:
    if r.image_path:
      by_dir.setdefault(os.path.dirname(r.image_path), []).append(r)
  missing = []
  for folder, recs in by_dir.items():
    try:
      present = set(tf.io.gfile.listdir(folder)) if folder else set(os.listdir('.'))
    except tf.errors.OpError:  # absent, or not a folder
      present = set()
    missing += [r for r in recs if os.path.basename(r.image_path) not in present]
  if missing:
    examples = '; '.join(f'{r.origin}: {r.image_path!r}' for r in missing[:shown])
    raise DataFormatError(
      f'{len(missing)} image file(s) named in the annotations do not exist, e.g. {examples}'
    )
