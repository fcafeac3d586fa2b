"""seqio tasks and the mixture of the synthetic multilingual PaLI tasks.

Importing this module registers, at image size 224 with the shipped vocabulary:

  pali_synthetic_caption          'Generate caption in FR:' -> caption
  pali_synthetic_vqa              'Answer in DE: <German question>' -> answer
  pali_synthetic_xvqa             'Answer in DE: <question in another language>' -> answer
  pali_synthetic_ocr              'Generate OCR text:' -> the rendered word
  pali_synthetic_vqg              'Generate a question in ES for: <answer>' -> question
  pali_synthetic_object_vqa       'Answer in EN: Is there a red circle in the image?' -> yes/no
  pali_synthetic_detection        'Detect all objects in ZH:' -> 'ymin xmin ymax xmax label ; ...'
  pali_synthetic_split_cap        'Generate the alt_text in EN at 4: ... <extra_id_0>' -> rest
  pali_synthetic_span_corruption  text-only, T5 span corruption (zero image, has_image 0)
  pali_synthetic_mixture          all of them, rates DEFAULT_RATES

`register_synthetic_tasks(image_size=32, suffix='_32')` registers another copy
(names + suffix), e.g. for the tiny demo model; calling it again with the same
arguments is a no-op. Splits: 'train' (1,000,000 examples by default) and
'validation' (512 per task), generated from disjoint seed streams.
"""

import dataclasses
import functools
from collections.abc import Mapping

import seqio
import tensorflow as tf

from pali_pax.core import batch as batch_lib
from pali_pax.core import errors
from pali_pax.tasks import features, image_ops, metrics, span_corruption, synthetic
from pali_pax.tasks import synthetic_scene as scene_lib
from pali_pax.tasks import vocab as vocab_lib

PREFIX = 'pali_synthetic_'
MIXTURE = 'pali_synthetic_mixture'
DEFAULT_IMAGE_SIZE = 224
VALIDATION_EXAMPLES = 512  # per task, the default 'validation' split

# Mixing rates (relative). Captioning and VQA dominate, as in PaLI's mixture.
DEFAULT_RATES: dict[str, float] = {
  'caption': 2.0,
  'vqa': 2.0,
  'xvqa': 1.0,
  'ocr': 1.0,
  'vqg': 1.0,
  'object_vqa': 1.0,
  'detection': 1.0,
  'split_cap': 1.0,
  'span_corruption': 0.5,
}


@dataclasses.dataclass(frozen=True)
class SyntheticConfig:
  """Everything that defines one registered copy of the synthetic tasks."""

  image_size: int
  vocab_path: str | None
  rates: tuple[tuple[str, float], ...]
  num_train_examples: int
  num_validation_examples: int
  seed: int
  max_objects: int
  ocr_style: str = 'plain'


_REGISTERED: dict[str, SyntheticConfig] = {}


def task_name(task: str, suffix: str = '') -> str:
  """Registered name of a synthetic task, e.g. 'pali_synthetic_vqa_32'."""
  return f'{PREFIX}{synthetic.check_task(task)}{suffix}'


def mixture_name(suffix: str = '') -> str:
  """Registered name of the synthetic mixture."""
  return f'{MIXTURE}{suffix}'


class SyntheticSource(seqio.DataSource):
  """Generates the raw examples of one synthetic task in TF (`synthetic.dataset`), by index.

  Examples are i.i.d. draws already, so there is no shuffle buffer (which would
  hold thousands of decoded images per task): "shuffling" with a seed only
  rotates the index order, so different seeds start at different examples.
  Sharding takes every num_shards-th index, so shards are exact and disjoint.
  `example_at` gives random access by index (the step-indexed train input).
  The split sizes are not reported to seqio, which would otherwise cache the
  (cheap to regenerate) images of small splits in memory.
  """

  def __init__(
    self,
    task: str,
    image_size: int,
    num_examples: Mapping[str, int],
    seed: int,
    max_objects: int,
    vocab: seqio.Vocabulary | None = None,
    ocr_style: str = 'plain',
  ):
    self._task, self._image_size = task, image_size
    self._ocr_style = scene_lib.check_ocr_style(ocr_style)
    self._seed, self._max_objects = seed, max_objects
    self._vocab = vocab
    self._num_examples = dict(num_examples)
    super().__init__(
      splits=tuple(num_examples), caching_permitted=False, performs_internal_shuffling=True
    )

  def _generator_args(self, split: str) -> tuple:
    """`synthetic.batch_fn`'s arguments for `split`."""
    return (
      self._task,
      split,
      self._image_size,
      self._seed,
      self._max_objects,
      self._ocr_style,
    )

  @property
  def image_size(self) -> int:
    """Side of the generated images in pixels."""
    return self._image_size

  @property
  def supports_arbitrary_sharding(self) -> bool:
    return True

  @property
  def output_features(self) -> Mapping[str, seqio.Feature]:
    return {}

  def list_shards(self, split: str) -> list[str]:
    return [split]

  def get_dataset(
    self,
    split: str = 'train',
    shuffle: bool = True,
    seed: int | None = None,
    shard_info: seqio.ShardInfo | None = None,
    *,
    sequence_length: Mapping[str, int] | None = None,
    use_cached: bool = False,
    num_epochs: int | None = 1,
  ) -> tf.data.Dataset:
    del sequence_length, use_cached, num_epochs
    if split not in self._num_examples:
      raise errors.ConfigError(
        f'Unknown split {split!r}; valid splits: {", ".join(self._num_examples)}'
      )
    n = self._num_examples[split]
    index, shards = (shard_info.index, shard_info.num_shards) if shard_info else (0, 1)
    offset = (int(seed) * 7919) % n if shuffle and seed is not None else 0
    fn = synthetic.batch_fn(*self._generator_args(split))

    @tf.autograph.experimental.do_not_convert  # plain TF already: skip autograph's slow transpiling
    def make(i: tf.Tensor) -> dict[str, tf.Tensor]:
      return fn((i + offset) % n)

    # A batch of indices per generator call (one tf.data call per batch), order kept.
    ds = tf.data.Dataset.range(index, n, shards).batch(synthetic.BATCH)
    return ds.map(make, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).unbatch()

  def num_examples(self, split: str) -> int:
    """Examples per epoch of `split`."""
    return self._num_examples[split]

  def example_at(self, split: str, index: tf.Tensor) -> dict[str, tf.Tensor]:
    """Raw example `index` (int64 [], in [0, num_examples)) of `split`, for the step input."""
    if split not in self._num_examples:
      raise errors.ConfigError(
        f'Unknown split {split!r}; valid splits: {", ".join(self._num_examples)}'
      )
    fn = synthetic.example_fn(*self._generator_args(split))
    return fn(index)

  def features_batch(
    self,
    split: str,
    records: tf.Tensor,
    example_seeds: tf.Tensor,
    lengths: Mapping[str, int],
  ) -> dict[str, tf.Tensor]:
    """The task's preprocessed features of n records, made a batch at a time.

    What the task's seqio preprocessors (`_preprocessors`), seqio's trimming and
    padding to `lengths` give for each record, in batch ops: one generator call,
    one tokeniser call per text field.

    Args:
      split: 'train' or 'validation'.
      records: int64 [n] record indices.
      example_seeds: int64 [n, 2], each example's `features.EXAMPLE_SEED`.
      lengths: {'inputs': Ti, 'targets': To}.

    Returns:
      inputs int32 [n, Ti], targets int32 [n, To] (EOS last or cut, 0-padded),
      image float32 [n, S, S, 3] in [-1, 1], has_image float32 [n].
    """
    if self._vocab is None:
      raise errors.ConfigError(f'SyntheticSource({self._task!r}) needs its vocab to make features')
    raw = synthetic.batch_fn(*self._generator_args(split))(records)
    vocab, size = self._vocab, self._image_size
    ti, to = lengths['inputs'], lengths['targets']
    n = tf.shape(records)[0]
    tokens = {
      k: tf.cast(vocab_lib.encode_tf(vocab, raw[k]), tf.int32) for k in features.TEXT_FEATURES
    }
    if self._task in synthetic.TEXT_ONLY_TASKS:
      inputs, targets = _span_corrupt(vocab, tokens['inputs'], example_seeds, ti, to)
      image, has_image = tf.zeros([n, size, size, 3], tf.float32), tf.zeros([n], tf.float32)
    else:
      inputs = _eos_after_trim(tokens['inputs'], ti, vocab.eos_id)
      targets = _eos_after_trim(tokens['targets'], to, vocab.eos_id)
      # image_ops.resize_and_scale at the generated size: the same ops, so the same floats.
      image = batch_lib.scale_pixels(tf.clip_by_value(tf.cast(raw['image'], tf.float32), 0, 255))
      has_image = tf.ones([n], tf.float32)
    return {'inputs': inputs, 'targets': targets, 'image': image, 'has_image': has_image}


def _eos_after_trim(tokens: tf.Tensor, length: int, eos_id: int) -> tf.Tensor:
  """int32 [n, length]: each row cut to length - 1 tokens, EOS appended, 0-padded.

  tokens: int32 [n, None] ragged (seqio's append_eos_after_trim, then its padding).
  """
  # Dense ops after one `to_tensor`: ragged concatenation costs ~100 graph ops per call.
  cut = tokens[:, : length - 1]
  kept = tf.cast(cut.row_lengths(), tf.int32)
  dense = cut.to_tensor(default_value=0, shape=[None, length])
  return dense + eos_id * tf.one_hot(kept, length, dtype=tf.int32)


def _span_corrupt(
  vocab: seqio.Vocabulary, tokens: tf.Tensor, example_seeds: tf.Tensor, ti: int, to: int
) -> tuple[tf.Tensor, tf.Tensor]:
  """(inputs [n, ti], targets [n, to]): span corruption of each row of `tokens` (ragged
  [n, None]) with its example's seed, as the task's preprocessor draws it, then EOS.

  Row by row (tf.map_fn): a text-only example is ~2% of the demo's mixture.
  """

  @tf.autograph.experimental.do_not_convert
  def row(i: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    seed = tf.random.experimental.stateless_fold_in(example_seeds[i], span_corruption.SEED_SALT)
    mask = span_corruption.noise_mask(tf.size(tokens[i]), seed)
    inputs, targets = span_corruption.corrupt(tokens[i], mask, vocab.vocab_size)
    pair = tf.ragged.stack([inputs, targets])
    return (
      _eos_after_trim(pair[:1], ti, vocab.eos_id)[0],
      _eos_after_trim(pair[1:], to, vocab.eos_id)[0],
    )

  spec = (tf.TensorSpec([ti], tf.int32), tf.TensorSpec([to], tf.int32))
  return tf.map_fn(row, tf.range(tokens.nrows()), fn_output_signature=spec)


def _preprocessors(task: str, config: SyntheticConfig, vocab: seqio.Vocabulary) -> list:
  if task in synthetic.TEXT_ONLY_TASKS:
    return [
      image_ops.add_text_only_image(config.image_size),
      features.tokenize_text,
      span_corruption.span_corruption_preprocessor(vocab),
      seqio.preprocessors.append_eos_after_trim,
    ]
  return [
    image_ops.scale_images(config.image_size),
    features.tokenize_text,
    seqio.preprocessors.append_eos_after_trim,
  ]


def _add_or_replace_task(name: str, **kwargs: object) -> None:
  seqio.TaskRegistry.remove(name)
  seqio.TaskRegistry.add(name, **kwargs)


def register_synthetic_tasks(
  image_size: int = DEFAULT_IMAGE_SIZE,
  vocab_path: str | None = None,
  suffix: str = '',
  rates: Mapping[str, float] | None = None,
  num_train_examples: int = 1_000_000,
  num_validation_examples: int = VALIDATION_EXAMPLES,
  seed: int = 0,
  max_objects: int = 2,
  ocr_style: str = 'plain',
) -> str:
  """Registers the synthetic tasks and their mixture (idempotent); returns the mixture name.

  Args:
    image_size: side of the square images in pixels (224 / 588 PaLI, 32 / 64 tiny).
    vocab_path: SentencePiece model (e.g. mT5's); None = the shipped small one.
    suffix: appended to every task and mixture name, to register several copies.
    rates: mixing rate per task short name (see DEFAULT_RATES); tasks left out
      keep their default rate, rate 0 leaves a task out of the mixture.
    num_train_examples: examples per task in 'train'.
    num_validation_examples: examples per task in 'validation'.
    seed: global data seed.
    max_objects: most shapes per image (1..3).
    ocr_style: how the OCR task draws its words (`synthetic_scene.OCR_STYLES`).

  Raises:
    ValueError: unknown task in `rates`, or `suffix` already registered with
      different arguments.
  """
  merged = dict(DEFAULT_RATES)
  for task, rate in (rates or {}).items():
    synthetic.check_task(task)
    merged[task] = float(rate)
  config = SyntheticConfig(
    image_size=int(image_size),
    vocab_path=vocab_path,
    rates=tuple(sorted(merged.items())),
    num_train_examples=int(num_train_examples),
    num_validation_examples=int(num_validation_examples),
    seed=int(seed),
    max_objects=int(max_objects),
    ocr_style=scene_lib.check_ocr_style(ocr_style),
  )
  if suffix in _REGISTERED:
    if _REGISTERED[suffix] == config:
      return mixture_name(suffix)
    raise errors.ConfigError(
      f'synthetic tasks with suffix {suffix!r} are already registered with {_REGISTERED[suffix]}; '
      f'use another suffix for {config}'
    )
  vocab = vocab_lib.get_vocabulary(vocab_path)
  out_features = features.output_features(vocab)
  num_examples = {'train': config.num_train_examples, 'validation': config.num_validation_examples}
  for task in synthetic.TASKS:
    name = task_name(task, suffix)
    _add_or_replace_task(
      name,
      source=SyntheticSource(
        task,
        config.image_size,
        num_examples,
        config.seed,
        config.max_objects,
        vocab,
        config.ocr_style,
      ),
      preprocessors=_preprocessors(task, config, vocab),
      output_features=out_features,
      postprocess_fn=features.postprocess_text,
      metric_fns=metrics.metrics_for(task),
      shuffle_buffer_size=None,  # the source's examples are i.i.d. draws
    )
  seqio.MixtureRegistry.remove(mixture_name(suffix))
  seqio.MixtureRegistry.add(
    mixture_name(suffix),
    [(task_name(t, suffix), r) for t, r in config.rates if r > 0],
  )
  _REGISTERED[suffix] = config
  return mixture_name(suffix)


def registered_configs() -> dict[str, SyntheticConfig]:
  """suffix -> config of every registered copy (for listings)."""
  return dict(_REGISTERED)


@functools.cache
def _register_defaults() -> str:
  return register_synthetic_tasks()


_register_defaults()
