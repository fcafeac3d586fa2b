"""T5-style span corruption of token ids (the text-only task of the PaLI mixture).

About `noise_density` of the tokens, in spans of mean length `mean_span_length`,
are dropped from the input; each dropped span is replaced by one sentinel
(`<extra_id_0>`, `<extra_id_1>`, ... = ids vocab_size-1, vocab_size-2, ...), and
the target lists each sentinel followed by the tokens it replaced:

    tokens:  The quick brown fox jumps over the lazy dog
    inputs:  The quick <extra_id_0> jumps over <extra_id_1> dog
    targets: <extra_id_0> brown fox <extra_id_1> the lazy

Spans alternate non-noise / noise, span lengths are a random composition of
the counts (every span non-empty), and the pattern is rotated by a random
offset: on short texts (a sentence has 1-2 spans) an unrotated pattern would
always corrupt the tail. Pure TF, stateless randomness from an explicit seed:
the example's own seed under the step-indexed train input, seqio's otherwise.
"""

from collections.abc import Callable, Mapping

import seqio
import tensorflow as tf

from pali_pax.tasks import features

SEED_SALT = 1  # features.example_seed salt of span corruption (the batched synthetic path too)


def _random_composition(total: tf.Tensor, parts: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
  """`parts` positive int32 lengths summing to `total` (uniform random cut points)."""
  # Choose parts-1 distinct cut points in [1, total-1] by sorting a random permutation.
  cuts = tf.random.experimental.stateless_shuffle(tf.range(1, total), seed=seed)[: parts - 1]
  bounds = tf.concat([[0], tf.sort(cuts), [total]], axis=0)
  return bounds[1:] - bounds[:-1]


def noise_mask(
  length: tf.Tensor, seed: tf.Tensor, noise_density: float = 0.15, mean_span_length: float = 3.0
) -> tf.Tensor:
  """bool [length]: which tokens are noise; spans alternate clean / noise.

  Args:
    length: scalar int32, number of tokens (>= 2 for any noise).
    seed: int32 [2] stateless seed.
    noise_density: fraction of tokens to drop.
    mean_span_length: average noise span length, in tokens.
  """
  length = tf.cast(length, tf.int32)

  def _mask() -> tf.Tensor:
    num_noise = tf.cast(tf.round(tf.cast(length, tf.float32) * noise_density), tf.int32)
    num_noise = tf.clip_by_value(num_noise, 1, length - 1)
    num_clean = length - num_noise
    num_spans = tf.cast(tf.round(tf.cast(num_noise, tf.float32) / mean_span_length), tf.int32)
    num_spans = tf.clip_by_value(num_spans, 1, tf.minimum(num_noise, num_clean))
    seeds = tf.random.experimental.stateless_split(seed, 3)
    noise_lens = _random_composition(num_noise, num_spans, seeds[0])
    clean_lens = _random_composition(num_clean, num_spans, seeds[1])
    # Interleave [clean_0, noise_0, clean_1, noise_1, ...] and expand to a mask.
    lens = tf.reshape(tf.stack([clean_lens, noise_lens], axis=1), [-1])
    mask = tf.repeat(tf.tile([False, True], [num_spans]), lens)
    shift = tf.random.stateless_uniform([], seeds[2], 0, length, dtype=tf.int32)
    return tf.roll(mask, shift, axis=0)

  return tf.cond(length >= 2, _mask, lambda: tf.zeros([length], tf.bool))


def corrupt(tokens: tf.Tensor, mask: tf.Tensor, vocab_size: int) -> tuple[tf.Tensor, tf.Tensor]:
  """(inputs, targets) int32 from `tokens` [T] and noise `mask` [T].

  Sentinel k is id `vocab_size - 1 - k` (mT5 / seqio convention).
  """
  tokens = tf.cast(tokens, tf.int32)
  prev = tf.concat([[False], mask[:-1]], axis=0)
  noise_start = tf.logical_and(mask, tf.logical_not(prev))
  span_index = tf.cumsum(tf.cast(noise_start, tf.int32)) - 1
  sentinel = vocab_size - 1 - span_index
  none = tf.fill(tf.shape(tokens), -1)
  # Each position contributes [sentinel if a span starts here, token if kept];
  # flatten and drop the -1 placeholders.
  maybe_sentinel = tf.where(noise_start, sentinel, none)
  inputs = tf.reshape(tf.stack([maybe_sentinel, tf.where(mask, none, tokens)], axis=1), [-1])
  targets = tf.reshape(tf.stack([maybe_sentinel, tf.where(mask, tokens, none)], axis=1), [-1])
  return inputs[inputs >= 0], targets[targets >= 0]


def span_corruption_preprocessor(
  vocab: seqio.Vocabulary,
  noise_density: float = 0.15,
  mean_span_length: float = 3.0,
  max_tokens: int | None = None,
) -> Callable[[tf.data.Dataset], tf.data.Dataset]:
  """seqio preprocessor: tokenised 'inputs' -> span-corrupted 'inputs' / 'targets'.

  Runs after tokenisation and before EOS is appended. Refreshes
  'inputs_pretokenized' / 'targets_pretokenized' (when present) with the decoded
  corrupted texts so logs and metrics show what the model sees.

  Args:
    vocab: the vocabulary (gives the sentinel ids and decoding).
    noise_density: fraction of tokens dropped.
    mean_span_length: mean noise span length in tokens.
    max_tokens: if set, the text is first cut to this many tokens.
  """

  @seqio.map_over_dataset(num_seeds=1)
  @tf.autograph.experimental.do_not_convert
  def _corrupt(ex: Mapping[str, tf.Tensor], seed: tf.Tensor) -> dict[str, tf.Tensor]:
    ex = dict(ex)
    tokens = ex['inputs']
    if max_tokens:
      tokens = tokens[:max_tokens]
    seed = features.example_seed(ex, seed, SEED_SALT)
    mask = noise_mask(tf.size(tokens), seed, noise_density, mean_span_length)
    ex['inputs'], ex['targets'] = corrupt(tokens, mask, vocab.vocab_size)
    for key in ('inputs', 'targets'):
      if f'{key}_pretokenized' in ex:
        ex[f'{key}_pretokenized'] = vocab.decode_tf(ex[key])
    return ex

  def fn(ds: tf.data.Dataset) -> tf.data.Dataset:
    return _corrupt(ds)

  return fn
