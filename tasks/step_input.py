"""Step-indexed training input: the batch of step s is a pure function of (seed, s).

The global batch of step s holds the global example indices [s*B, (s+1)*B), where
B = batch_size * num_infeed_hosts (praxis' `batch_size` is per process). Process h
of P makes the contiguous slice [s*B + h*b, s*B + (h+1)*b), b = B / P, so the global
batch is the same for any number of processes. Example k is:

  task     t(k): drawn from the mixture rates with a hash of (seed, k) (`task_choices`)
  record   r(k): epoch e = k // N over the task's N examples; position k % N through
                 a stateless permutation seeded by (seed, task, e)
  raw      source.example_at(split, r(k)), plus features.EXAMPLE_SEED = (seed, k)
  features the task's own seqio preprocessors run on that one example (its random
           preprocessors draw from EXAMPLE_SEED, see `features.example_seed`), then
           trimming and the feature converter.

An example its preprocessors drop (an undecodable image) is replaced by example
k + j * REPLACEMENT_STRIDE for j = 1, 2, ...: another draw, the same on every run.

Two ways to run a task's preprocessors, with the same result. A task whose
preprocessing keeps the number of examples (only 1:1 maps, as tf.data's static
cardinality shows: the synthetic tasks) is streamed: one pipeline over the
task's indices in order, ~3x cheaper on the host than building one pipeline per
example. A task that can drop examples (a filter: the readers' image decoding)
runs per example, with the replacements above. Either way a random preprocessor
must draw from EXAMPLE_SEED, never from its position in the stream.

A mixture whose every task makes its features a batch at a time (`batched`: the
synthetic tasks' `features_batch`) skips both: one tf.data call makes the rows of
several steps (task draws, each task's rows in batch ops, the feature converter's
`convert_batch`), ~6x less host CPU per example (`benchmarks.synthetic_input`).
The rows are the same as the streamed path's (test), so resume is unchanged.

The input's state is the next step. paxml sets it on restart: for a train input
with a `deterministic_input_start_index` field, paxml's executor writes the
checkpoint step it restores into `_latest_model_step` before building the input
(`paxml.executors._maybe_update_latest_model_step`). With paxml folding the step
into the train PRNG key (`trainer_lib.train_step_single_learner`), a run stopped
at any point and restarted continues exactly like the uninterrupted run.

Sources need random access: `num_examples(split) -> int` and
`example_at(split, index: tf.Tensor) -> dict` (the synthetic tasks' source and the
JSON/JSONL readers have them; TFRecord / TFDS sources only stream: `random_access` tells,
and the experiments read those with paxml's SeqIOInput instead).
"""

import dataclasses
import json
import zlib
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import seqio
import tensorflow as tf
from paxml import seqio_input
from praxis import base_input, pax_fiddle, py_utils

from pali_pax.core import errors
from pali_pax.tasks import features

REPLACEMENT_STRIDE = 1 << 40  # far beyond any run's examples (PaLI: 1.6e9 < 2**31)
MAX_ATTEMPTS = 4  # tries per example slot before the input fails
_CYCLE = 2  # examples prepared in parallel per task (more only thrashes small CPUs)
_CHOICE_CHUNK = 256  # example indices per vectorised task draw
# Rows one call of the batched path makes (the batches of several steps): at most
# this many, and at most _CALL_BYTES of float images.
_ROWS_PER_CALL = 1024
_CALL_BYTES = 64 << 20


def _options() -> tf.data.Options:
  """tf.data options of the train input.

  Fusing consecutive maps (the source's example, each seqio preprocessor, the
  trimming, the feature converter) saves ~20% of the host CPU per example of the
  synthetic mixture (`benchmarks.input`), CPU the train step shares on small
  hosts. Fusion keeps the order, so every step's batch is unchanged (test).
  """
  options = tf.data.Options()
  options.experimental_optimization.map_fusion = True
  return options


_OPTIONS = _options()


def host_example_indices(
  step: int, batch_size: int, num_hosts: int, host: int, offset: int = 0
) -> np.ndarray:
  """int64 [batch_size]: global example indices of `host`'s rows at `step`.

  Args:
    step: train step.
    batch_size: rows per host (praxis `batch_size`).
    num_hosts: processes feeding the global batch (praxis `num_infeed_hosts`).
    host: this process (praxis `infeed_host_index`).
    offset: added to every index (`DeterministicInput.example_index_offset`).
  """
  first = step * batch_size * num_hosts + host * batch_size + offset
  return np.arange(first, first + batch_size, dtype=np.int64)


def _salt(name: str) -> int:
  """Stable 31-bit number of a task name (seeds its record permutation)."""
  return zlib.crc32(name.encode('utf-8')) & 0x7FFFFFFF


def tasks_and_rates(name: str) -> list[tuple[seqio.Task, float]]:
  """(task, rate) of every task of a mixture with rate > 0, or [(task, 1.0)] for a task."""
  provider = seqio.get_mixture_or_task(name)
  if isinstance(provider, seqio.Task):
    return [(provider, 1.0)]
  out = [(t, float(provider.get_rate(t))) for t in provider.tasks]
  return [(t, r) for t, r in out if r > 0]


def _has_random_access(task: seqio.Task) -> bool:
  return hasattr(task.source, 'example_at') and hasattr(task.source, 'num_examples')


def random_access(name: str) -> bool:
  """Whether every task of mixture / task `name` (rate > 0) can be read by example index."""
  return all(_has_random_access(t) for t, _ in tasks_and_rates(name))


def _check_random_access(task: seqio.Task, split: str) -> int:
  source = task.source
  if not _has_random_access(task):
    raise errors.ConfigError(
      f'seqio task {task.name!r}: its source {type(source).__name__} has no random access '
      '(num_examples / example_at), which the step-indexed train input needs; use a '
      'JSON/JSONL reader or the synthetic tasks'
    )
  n = int(source.num_examples(split))
  if n <= 0:
    raise errors.ConfigError(f'seqio task {task.name!r}: split {split!r} has no examples')
  return n


def _task_stream_fn(task: seqio.Task, split: str, seed: int, lengths: Mapping[str, int]) -> Any:
  """ks (int64 dataset) -> the task's preprocessed examples for those indices, in order."""
  n = _check_random_access(task, split)
  base = tf.constant([seed, _salt(task.name)], tf.int64)
  keys = list(task.output_features)

  def raw(k: tf.Tensor) -> dict[str, tf.Tensor]:
    perm_seed = tf.random.experimental.stateless_fold_in(base, k // n)
    record = tf.random.experimental.index_shuffle(
      k % n, tf.cast(perm_seed, tf.int64), tf.constant(n - 1, tf.int64)
    )
    ex = dict(task.source.example_at(split, record))
    ex[features.EXAMPLE_SEED] = tf.stack([tf.constant(seed, tf.int64), k])
    return ex

  def preprocessed(ks: tf.data.Dataset, parallel: int | None = None) -> tf.data.Dataset:
    ds = ks.map(tf.autograph.experimental.do_not_convert(raw), num_parallel_calls=parallel)
    ds = task.preprocess_precache(ds, seed=seed)
    ds = task.preprocess_postcache(ds, sequence_length=lengths, seed=seed)
    ds = seqio.utils.trim_dataset(ds, lengths, task.output_features)
    return ds.map(lambda ex: {key: ex[key] for key in keys if key in ex})

  probe = preprocessed(tf.data.Dataset.range(3))
  if int(probe.cardinality()) == 3:  # only 1:1 maps: nothing is ever dropped
    return lambda ks: preprocessed(ks, _CYCLE)

  def one(k: tf.Tensor) -> tf.data.Dataset:
    return preprocessed(tf.data.Dataset.from_tensors(k))

  @tf.autograph.experimental.do_not_convert
  def example(k: tf.Tensor) -> tf.data.Dataset:
    # Later candidates are prepared only when the earlier ones produced nothing.
    candidates = k + REPLACEMENT_STRIDE * tf.range(MAX_ATTEMPTS, dtype=tf.int64)
    ds = tf.data.Dataset.from_tensor_slices(candidates).flat_map(one)
    # Exactly one example per slot, or an error (never a silently shifted stream).
    return ds.take(1).apply(tf.data.experimental.assert_cardinality(1))

  return lambda ks: ks.interleave(
    example, cycle_length=_CYCLE, block_length=1, num_parallel_calls=_CYCLE, deterministic=True
  )


def examples_dataset(
  name: str,
  split: str,
  seed: int,
  indices: tf.data.Dataset | Sequence[int],
  task_feature_lengths: Mapping[str, int],
) -> tf.data.Dataset:
  """Preprocessed examples (task features, before the feature converter) for `indices`.

  Args:
    name: seqio task or mixture.
    split: split every task reads.
    seed: data seed.
    indices: global example indices (int64), in the order wanted.
    task_feature_lengths: {'inputs': Ti, 'targets': To}.
  """
  if not isinstance(indices, tf.data.Dataset):
    indices = tf.data.Dataset.from_tensor_slices(np.asarray(indices, np.int64).reshape(-1))
  tasks = tasks_and_rates(name)
  if not tasks:
    raise errors.ConfigError(f'seqio mixture {name!r} has no task with a rate > 0')
  per_task = [_task_stream_fn(task, split, seed, task_feature_lengths) for task, _ in tasks]
  if len(tasks) == 1:
    return per_task[0](indices)
  rates = np.array([r for _, r in tasks], np.float64)
  # Task ids are drawn a chunk of indices at a time: per-element tf.data calls
  # in each of the task streams would cost the host more than making the examples.
  tagged = indices.batch(_CHOICE_CHUNK).map(
    lambda ks: (ks, task_choices(seed, ks, rates)), num_parallel_calls=None
  )
  chosen = [
    fn(tagged.map(lambda ks, ts, i=i: tf.boolean_mask(ks, tf.equal(ts, i))).unbatch())
    for i, fn in enumerate(per_task)
  ]
  return tf.data.Dataset.choose_from_datasets(chosen, tagged.map(lambda ks, ts: ts).unbatch())


def batched(name: str) -> bool:
  """Whether every task of `name` (rate > 0) makes its features a batch at a time.

  Such a task's source has random access, `features_batch(split, records,
  example_seeds, lengths)`: its preprocessed, padded features of n records in
  batch ops (the synthetic tasks), and `image_size` (the side of its images). It
  never drops an example.
  """
  return all(
    _has_random_access(t) and all(hasattr(t.source, a) for a in ('features_batch', 'image_size'))
    for t, _ in tasks_and_rates(name)
  )


def _records(task: seqio.Task, split: str, seed: int, ks: tf.Tensor) -> tf.Tensor:
  """int64 [m]: the record of each example index of `ks` (int64 [m]), as the streamed path
  picks it: position k % N through the permutation of epoch k // N.

  `ks` may span two epochs (a batch crossing into the next; the indices of one
  batch are fewer than N apart), so two vector permutations cover it.
  """
  n = _check_random_access(task, split)
  base = tf.constant([seed, _salt(task.name)], tf.int64)
  epoch = ks // n
  first = tf.reduce_min(epoch)
  check = tf.debugging.assert_less_equal(
    tf.reduce_max(epoch) - first, tf.constant(1, tf.int64), f'{task.name}: batch spans > 2 epochs'
  )

  def permuted(e: tf.Tensor) -> tf.Tensor:
    perm_seed = tf.cast(tf.random.experimental.stateless_fold_in(base, e), tf.int64)
    return tf.random.experimental.index_shuffle(ks % n, perm_seed, tf.constant(n - 1, tf.int64))

  def both() -> tf.Tensor:
    with tf.control_dependencies([check]):
      return tf.where(tf.equal(epoch, first), permuted(first), permuted(first + 1))

  # No rows of this task in the batch: index_shuffle refuses an empty index.
  return tf.cond(tf.size(ks) > 0, both, lambda: tf.zeros([0], tf.int64))


def features_batch_fn(
  name: str, split: str, seed: int, task_feature_lengths: Mapping[str, int]
) -> Any:
  """ks (int64 [b]) -> task features of those examples, padded: inputs [b, Ti], targets
  [b, To], image [b, H, W, 3], has_image [b]; the same rows as `examples_dataset` padded.

  For a mixture where `batched(name)`: the task of each example, then one
  `features_batch` call per task on its rows, stitched back in order.
  """
  if not batched(name):
    raise errors.ConfigError(f'seqio mixture {name!r}: not every task makes batches')
  tasks = tasks_and_rates(name)
  rates = np.array([r for _, r in tasks], np.float64)
  lengths = dict(task_feature_lengths)

  @tf.autograph.experimental.do_not_convert
  def fn(ks: tf.Tensor) -> dict[str, tf.Tensor]:
    ts = task_choices(seed, ks, rates) if len(tasks) > 1 else tf.zeros_like(ks)
    rows, parts = [], []
    for i, (task, _) in enumerate(tasks):
      at = tf.cast(tf.where(tf.equal(ts, i))[:, 0], tf.int32)
      k = tf.gather(ks, at)
      seeds = tf.stack([tf.fill(tf.shape(k), tf.constant(seed, tf.int64)), k], axis=1)
      rows.append(at)
      parts.append(
        task.source.features_batch(split, _records(task, split, seed, k), seeds, lengths)
      )
    return {key: tf.dynamic_stitch(rows, [p[key] for p in parts]) for key in parts[0]}

  return fn


def _mix64(z: tf.Tensor) -> tf.Tensor:
  """splitmix64's finaliser on uint64 (a bijection that spreads every input bit)."""
  for shift, mult in ((30, 0xBF58476D1CE4E5B9), (27, 0x94D049BB133111EB)):
    z = tf.bitwise.bitwise_xor(z, tf.bitwise.right_shift(z, tf.constant(shift, tf.uint64)))
    z = z * tf.constant(mult, tf.uint64)
  return tf.bitwise.bitwise_xor(z, tf.bitwise.right_shift(z, tf.constant(31, tf.uint64)))


def task_choices(seed: int, ks: tf.Tensor, rates: np.ndarray) -> tf.Tensor:
  """int64 [n]: the task of each example index in `ks` (int64 [n]), drawn with `rates`.

  Each draw is a function of (seed, k) alone: u(k) = hash(seed, k) / 2**64, uniform
  in [0, 1), against the cumulative normalised rates.
  """
  golden = tf.constant(0x9E3779B97F4A7C15, tf.uint64)
  key = _mix64(tf.constant(seed % 2**64, tf.uint64) + golden)
  z = _mix64(tf.cast(ks, tf.uint64) * golden + key)
  u = tf.cast(tf.bitwise.right_shift(z, tf.constant(11, tf.uint64)), tf.float64) * 2.0**-53
  cum = np.cumsum(np.asarray(rates, np.float64) / np.sum(rates))[:-1]
  return tf.searchsorted(tf.constant(cum, tf.float64), u, side='right', out_type=tf.int64)


class StepIndexedInput(base_input.BaseInput):
  """Deterministic train input: the batch of step s depends only on (seed, s, split).

  Attributes:
    mixture_name: seqio task or mixture to train on.
    split_name: its split.
    task_feature_lengths: {'inputs': Ti, 'targets': To}.
    feature_converter: task features -> model features (e.g. PaliFeatureConverter).
    deterministic_input_start_index: paxml's DeterministicInput: paxml sets
      `_latest_model_step` to the restored checkpoint step; `start_step` is
      subtracted from it, `example_index_offset` added to every example index.
    make_batches: when every task makes its features a batch at a time (`batched`):
      one tf.data call per batch (~5x less host CPU per example on the synthetic
      mixture, `benchmarks.synthetic_input`); False streams example by example.
      Either way the same batches.
  """

  mixture_name: str | None = None
  split_name: str = 'train'
  task_feature_lengths: Mapping[str, int] | None = None
  feature_converter: seqio.FeatureConverter | None = None
  deterministic_input_start_index: pax_fiddle.Config[seqio_input.SeqIOInput.DeterministicInput] = (
    pax_fiddle.template_field(seqio_input.SeqIOInput.DeterministicInput)
  )
  make_batches: bool = True
  _step: int = dataclasses.field(init=False, repr=False)
  _iter: Any = dataclasses.field(init=False, repr=False)

  def __post_init__(self) -> None:
    super().__post_init__()
    for field in ('mixture_name', 'task_feature_lengths', 'feature_converter'):
      if getattr(self, field) is None:
        raise errors.ConfigError(f'StepIndexedInput {self.name!r} needs {field}')
    if not 0 <= self.infeed_host_index < self.num_infeed_hosts:
      raise errors.ConfigError(
        f'StepIndexedInput {self.name!r}: infeed_host_index {self.infeed_host_index} is not in '
        f'[0, num_infeed_hosts={self.num_infeed_hosts})'
      )
    dp = self.deterministic_input_start_index
    self._seek(int(dp._latest_model_step) - int(dp.start_step))  # noqa: SLF001 (paxml's name)

  @property
  def next_step(self) -> int:
    """The step whose batch the next `get_next()` returns."""
    return self._step

  def _seek(self, step: int) -> None:
    if step < 0:
      raise errors.ConfigError(f'StepIndexedInput {self.name!r}: start step {step} < 0')
    self._step = step
    self._iter = self._dataset(step).as_numpy_iterator()

  def _dataset(self, start_step: int) -> tf.data.Dataset:
    b, hosts, host = self.batch_size, self.num_infeed_hosts, self.infeed_host_index
    offset = int(self.deterministic_input_start_index.example_index_offset)
    first = start_step * b * hosts + host * b + offset

    @tf.autograph.experimental.do_not_convert
    def index(i: tf.Tensor) -> tf.Tensor:  # i-th example this host reads from start_step
      return first + (i // b) * (b * hosts) + i % b

    seed = 0 if self.input_random_seed is None else int(self.input_random_seed)
    if self.make_batches and batched(self.mixture_name):
      return self._batched_dataset(first, seed)
    ids = tf.data.Dataset.counter(dtype=tf.int64).map(index)
    ds = examples_dataset(
      self.mixture_name, self.split_name, seed, ids, dict(self.task_feature_lengths)
    )
    ds = self.feature_converter(ds, dict(self.task_feature_lengths))
    return ds.batch(b, drop_remainder=True).prefetch(2).with_options(_OPTIONS)

  def _batched_dataset(self, first: int, seed: int) -> tf.data.Dataset:
    """Batch i from the start step: example indices first + i * B * hosts + [0, b).

    One call makes the batches of several steps (_ROWS_PER_CALL rows and
    _CALL_BYTES of images at most): much of a call's cost is its fixed number of
    TF ops (nine tasks' generators), so more rows per call cost less per example
    (256 rows: ~1.5x the CPU per example of 1024 at 32 px). Each row still
    depends on its index alone, so the batches do not depend on the grouping.
    """
    b, hosts = self.batch_size, self.num_infeed_hosts
    side = max(int(t.source.image_size) for t, _ in tasks_and_rates(self.mixture_name))
    rows = min(_ROWS_PER_CALL, _CALL_BYTES // (side * side * 3 * 4))
    steps = max(1, rows // b)
    lengths = dict(self.task_feature_lengths)
    make = features_batch_fn(self.mixture_name, self.split_name, seed, lengths)
    converter = self.feature_converter
    convert = getattr(converter, 'convert_batch', lambda batch: batch)

    @tf.autograph.experimental.do_not_convert
    def call(c: tf.Tensor) -> dict[str, tf.Tensor]:  # steps c * steps ... (c + 1) * steps - 1
      step = c * steps + tf.range(steps, dtype=tf.int64)
      ks = first + step[:, None] * (b * hosts) + tf.range(b, dtype=tf.int64)[None, :]
      rows = convert(make(tf.reshape(ks, [-1])))
      return {k: tf.reshape(v, [steps, b, *v.shape[1:]]) for k, v in rows.items()}

    ds = tf.data.Dataset.counter(dtype=tf.int64)
    ds = ds.map(call, num_parallel_calls=_CYCLE, deterministic=True).unbatch()
    if not hasattr(converter, 'convert_batch'):  # any other converter: per example
      ds = converter(ds.unbatch(), lengths).batch(b, drop_remainder=True)
    return ds.prefetch(2).with_options(_OPTIONS)

  def get_next(self) -> py_utils.NestedMap:
    batch = next(self._iter)
    self._step += 1
    return py_utils.NestedMap(batch)

  def _get_state_internal(self) -> bytes:
    return json.dumps({'step': self._step}).encode('utf-8')

  def _set_state_internal(self, state: bytes) -> None:
    self._seek(int(json.loads(state.decode('utf-8'))['step']))
