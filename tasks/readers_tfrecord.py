"""Record-file readers: TFRecords of tf.train.Example, and locally prepared TFDS datasets.

Both map the stored features onto the raw schema of `pali_pax.tasks.readers`
through key arguments; absent keys take defaults (b'' image, '' question, ...).
`make_tf_example` / `write_tfrecord` write raw-schema examples under the default
keys of `tfrecord_source`, so a prepared or cached corpus reads back as written.

A TFRecord example whose text fields (texts, question, lang, ids) are not valid
UTF-8 is dropped and counted (`drop_counts`, reason 'invalid_utf8', logged), so
the tokenizer never silently turns the bad bytes into U+FFFD.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import seqio
import tensorflow as tf
import tensorflow_datasets as tfds

from pali_pax.core import errors
from pali_pax.tasks import drop_counts
from pali_pax.tasks.readers_common import RAW_FEATURES

# Default tf.train.Example keys (what `make_tf_example` writes).
DEFAULT_KEYS = {
  'image': 'image/encoded',
  'image_id': 'image/id',
  'example_id': 'example_id',
  'lang': 'lang',
  'question': 'question',
  'texts': 'texts',
}


def _bytes(values: Iterable[Any]) -> tf.train.Feature:
  data = [v if isinstance(v, bytes) else str(v).encode('utf-8') for v in values]
  return tf.train.Feature(bytes_list=tf.train.BytesList(value=data))


def make_tf_example(example: Mapping[str, Any]) -> tf.train.Example:
  """A raw-schema example (str/bytes values, `texts` a list) as a tf.train.Example."""
  feature = {DEFAULT_KEYS['texts']: _bytes(example.get('texts', ()))}
  for name in ('image', 'image_id', 'example_id', 'lang', 'question'):
    if name in example:
      feature[DEFAULT_KEYS[name]] = _bytes([example[name]])
  return tf.train.Example(features=tf.train.Features(feature=feature))


def write_tfrecord(path: str, examples: Iterable[Mapping[str, Any]]) -> int:
  """Writes raw-schema examples to one TFRecord file; returns how many were written."""
  n = 0
  with tf.io.TFRecordWriter(path) as writer:
    for example in examples:
      writer.write(make_tf_example(example).SerializeToString())
      n += 1
  return n


def _to_string(value: tf.Tensor) -> tf.Tensor:
  return value if value.dtype == tf.string else tf.strings.as_string(value)


def valid_utf8(ex: Mapping[str, tf.Tensor]) -> tf.Tensor:
  """Bool scalar: every text field of a raw-schema example (all but 'image') is valid UTF-8."""
  checks = []
  for name in RAW_FEATURES:
    if name == 'image':
      continue
    text = ex[name]
    # Transcoding replaces every invalid sequence, so valid text (even one holding
    # U+FFFD itself) comes back byte-identical and invalid text does not.
    fixed = tf.strings.unicode_transcode(text, 'UTF-8', 'UTF-8', errors='replace')
    checks.append(tf.reduce_all(tf.equal(fixed, text)))
  return tf.reduce_all(tf.stack(checks))


class RawSchemaTFExampleSource(seqio.TFExampleDataSource):
  """A TFExampleDataSource whose parsed examples are mapped onto the raw schema.

  Keeps the file-level sharding and shuffling of the parent (unlike a FunctionDataSource).
  """

  def __init__(
    self,
    split_to_filepattern: Mapping[str, str | Sequence[str]],
    feature_description: Mapping[str, tf.io.FixedLenFeature | tf.io.VarLenFeature],
    keys: Mapping[str, Any],
    default_lang: str,
    counter: str = 'tfrecord',
  ) -> None:
    super().__init__(split_to_filepattern, feature_description)
    self._keys = dict(keys)
    self._default_lang = default_lang
    self._counter = counter

  def _to_schema(self, parsed: dict[str, Any]) -> dict[str, tf.Tensor]:
    k = self._keys
    texts = [tf.sparse.to_dense(parsed[key]) for key in k['texts']]
    out = {
      'image': parsed[k['image']] if k['image'] else tf.constant(b''),
      'texts': tf.concat(texts, 0) if texts else tf.zeros([0], tf.string),
      'lang': parsed[k['lang']] if k['lang'] else tf.constant(self._default_lang),
    }
    for name in ('image_id', 'example_id', 'question'):
      out[name] = _to_string(parsed[k[name]]) if k[name] else tf.constant(b'')
    return {name: out[name] for name in RAW_FEATURES}

  def _valid(self, ex: dict[str, tf.Tensor]) -> tf.Tensor:
    ok = valid_utf8(ex)
    with tf.control_dependencies([drop_counts.increment(self._counter, 'invalid_utf8', ~ok)]):
      return tf.identity(ok)

  def get_dataset(self, *args: Any, **kwargs: Any) -> tf.data.Dataset:
    ds = super().get_dataset(*args, **kwargs)
    ds = ds.map(self._to_schema, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.filter(tf.autograph.experimental.do_not_convert(self._valid))


def tfrecord_source(
  file_pattern: str | Sequence[str] | Mapping[str, str | Sequence[str]],
  image_key: str | None = DEFAULT_KEYS['image'],
  text_keys: Sequence[str] = (DEFAULT_KEYS['texts'],),
  question_key: str | None = DEFAULT_KEYS['question'],
  image_id_key: str | None = DEFAULT_KEYS['image_id'],
  example_id_key: str | None = DEFAULT_KEYS['example_id'],
  lang_key: str | None = DEFAULT_KEYS['lang'],
  default_lang: str = 'en',
  int64_keys: Sequence[str] = (),
  counter: str = 'tfrecord',
) -> seqio.DataSource:
  """TFRecord files of tf.train.Example mapped onto the raw schema.

  Args:
    file_pattern: a pattern / list of files (the 'train' split), or seqio split ->
      pattern(s).
    image_key: bytes feature with the encoded image (None: text-only, image b'').
    text_keys: bytes-list features whose values, concatenated in this order, form
      `texts` (a missing feature contributes nothing).
    question_key, image_id_key, example_id_key: scalar features (None or missing: '').
    lang_key: scalar bytes feature with the language (None or missing: default_lang).
    default_lang: language when there is no lang feature.
    int64_keys: which of image_id_key / example_id_key are stored as int64 (they are
      turned into decimal strings).
    counter: name of the drop counter of examples with invalid UTF-8 text
      (`drop_counts.count(counter, 'invalid_utf8')`).

  Returns:
    A seqio TFExampleDataSource (file-level sharding and shuffling) of raw-schema examples.
  """
  splits = file_pattern if isinstance(file_pattern, Mapping) else {'train': file_pattern}
  desc: dict[str, tf.io.FixedLenFeature | tf.io.VarLenFeature] = {}
  if image_key:
    desc[image_key] = tf.io.FixedLenFeature([], tf.string, default_value=b'')
  for key in text_keys:
    desc[key] = tf.io.VarLenFeature(tf.string)
  for key in (question_key, image_id_key, example_id_key):
    if key:
      if key in int64_keys:
        desc[key] = tf.io.FixedLenFeature([], tf.int64, default_value=-1)
      else:
        desc[key] = tf.io.FixedLenFeature([], tf.string, default_value=b'')
  if lang_key:
    desc[lang_key] = tf.io.FixedLenFeature([], tf.string, default_value=default_lang.encode())
  keys = {
    'image': image_key,
    'texts': tuple(text_keys),
    'question': question_key,
    'image_id': image_id_key,
    'example_id': example_id_key,
    'lang': lang_key,
  }
  return RawSchemaTFExampleSource(splits, desc, keys, default_lang, counter)


def _find(node: Any, path: str, what: str) -> tuple[Any, list[str]]:
  """Walks a '/'-separated path through nested dicts (features or values).

  TFDS keys may themselves contain '/' (coco_captions has 'image/id'), so at each
  level the longest prefix that is a key wins. Sequence features are looked through.
  Returns the node and the list of keys taken.
  """
  parts, taken, i = path.split('/'), [], 0
  while i < len(parts):
    if isinstance(node, tfds.features.Sequence):
      node = node.feature
    keys = list(node.keys()) if hasattr(node, 'keys') else []
    for j in range(len(parts), i, -1):
      key = '/'.join(parts[i:j])
      if key in keys:
        node, i = node[key], j
        taken.append(key)
        break
    else:
      raise errors.ConfigError(f'{what}: no feature {path!r} (keys at that level: {sorted(keys)})')
  return node, taken


def _innermost(feature: Any) -> Any:
  while isinstance(feature, tfds.features.Sequence):
    feature = feature.feature
  return feature


def tfds_builder(name: str, data_dir: str | None = None) -> tfds.core.DatasetBuilder:
  """A locally prepared TFDS builder; never downloads. Clear FileNotFoundError otherwise."""
  try:
    builder = tfds.builder(name, data_dir=data_dir)
  except tfds.core.DatasetNotFoundError as e:
    raise FileNotFoundError(
      f'TFDS dataset {name!r} is neither a registered builder nor prepared under '
      f'data_dir={data_dir!r} (this reader never downloads): {e}'
    ) from e
  if not builder.is_prepared():
    raise FileNotFoundError(
      f'TFDS dataset {name!r} is not prepared under {builder.data_dir!r}; prepare it '
      '(`tfds build`) where there is network and copy it there (this reader never downloads)'
    )
  return builder


def tfds_source(
  name: str,
  data_dir: str | None = None,
  splits: Mapping[str, str] | Sequence[str] = ('train', 'validation', 'test'),
  image_key: str | None = 'image',
  text_keys: Sequence[str] = ('captions/text',),
  question_key: str | None = None,
  image_id_key: str | None = None,
  example_id_key: str | None = None,
  lang_key: str | None = None,
  default_lang: str = 'en',
) -> seqio.FunctionDataSource:
  """A TFDS dataset prepared on this machine, mapped onto the raw schema.

  Args:
    name: TFDS name, optionally with config/version ('coco_captions/2014:1.1.0').
    data_dir: TFDS data dir (None: TFDS default, ~/tensorflow_datasets).
    splits: seqio split names, or seqio split -> TFDS split spec ('train[:95%]').
    image_key: path of the image feature ('/'-separated for nested features); Image
      features are read without decoding, so `image` holds the stored encoded bytes.
    text_keys: paths of text features (Text, Sequence of Text, ClassLabel -> class
      name, ints -> decimal strings), concatenated into `texts`.
    question_key, image_id_key, example_id_key, lang_key: paths of scalar features
      (None: '' resp. default_lang).
    default_lang: language when lang_key is None.

  Returns:
    A seqio source. Opening a split raises FileNotFoundError when the dataset is not
    prepared locally (download=False semantics).
  """
  split_map = dict(splits) if isinstance(splits, Mapping) else {s: s for s in splits}

  def dataset_fn(split: str, shuffle_files: bool, seed: int | None = None) -> tf.data.Dataset:
    builder = tfds_builder(name, data_dir)
    features = builder.info.features
    # Resolve every path once, in Python: the map function below only indexes dicts.
    paths = {
      field: _find(features, key, name)
      for field, key in (
        ('image', image_key),
        ('image_id', image_id_key),
        ('example_id', example_id_key),
        ('lang', lang_key),
        ('question', question_key),
      )
      if key
    }
    texts = [_find(features, key, name) for key in text_keys]
    decoders: dict[str, Any] = {}
    if 'image' in paths and isinstance(_innermost(paths['image'][0]), tfds.features.Image):
      node = decoders
      for key in paths['image'][1][:-1]:
        node = node.setdefault(key, {})
      node[paths['image'][1][-1]] = tfds.decode.SkipDecoding()
    ds = builder.as_dataset(
      split=split_map[split],
      shuffle_files=shuffle_files,
      decoders=decoders or None,
      read_config=tfds.ReadConfig(shuffle_seed=seed),
    )
    defaults = {
      'image': b'',
      'image_id': '',
      'example_id': '',
      'lang': default_lang,
      'question': '',
    }

    def get(ex: dict[str, Any], taken: list[str]) -> tf.Tensor:
      for key in taken:
        ex = ex[key]
      return ex

    def as_text(value: tf.Tensor, feature: Any) -> tf.Tensor:
      if isinstance(feature, tfds.features.ClassLabel):
        value = tf.gather(tf.constant(feature.names), value)
      return tf.reshape(_to_string(value), [-1])

    def to_schema(ex: dict[str, Any]) -> dict[str, tf.Tensor]:
      out = {
        field: tf.reshape(_to_string(get(ex, paths[field][1])), [])
        if field in paths
        else tf.constant(default)
        for field, default in defaults.items()
      }
      parts = [as_text(get(ex, taken), _innermost(feature)) for feature, taken in texts]
      out['texts'] = tf.concat(parts, 0) if parts else tf.zeros([0], tf.string)
      return {field: out[field] for field in RAW_FEATURES}

    return ds.map(to_schema, num_parallel_calls=tf.data.AUTOTUNE)

  return seqio.FunctionDataSource(dataset_fn, splits=list(split_map))
