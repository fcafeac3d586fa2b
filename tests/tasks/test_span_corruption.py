"""T5-style span corruption: structure of inputs / targets and determinism."""

import numpy as np
import seqio
import tensorflow as tf

from pali_pax.tasks import span_corruption, vocab

VOCAB_SIZE = 2100


def _split_at_sentinels(ids):
  """[(sentinel, [tokens after it])...] and the tokens before the first sentinel."""
  head, groups = [], []
  for i in ids:
    if i >= VOCAB_SIZE - 100:
      groups.append((i, []))
    elif groups:
      groups[-1][1].append(i)
    else:
      head.append(i)
  return head, groups


def test_inputs_and_targets_rebuild_the_text():
  tokens = tf.range(3, 43)  # 40 distinct ids
  for s in range(20):
    mask = span_corruption.noise_mask(tf.size(tokens), tf.constant([s, 7]))
    inputs, targets = span_corruption.corrupt(tokens, mask, VOCAB_SIZE)
    inputs, targets, mask = inputs.numpy().tolist(), targets.numpy().tolist(), mask.numpy()
    assert mask.sum() == 6  # round(0.15 * 40)
    _, tgt_groups = _split_at_sentinels(targets)
    sentinels = [g[0] for g in tgt_groups]
    # Sentinels count down from the last id, one per noise span, same order in both.
    assert sentinels == list(range(VOCAB_SIZE - 1, VOCAB_SIZE - 1 - len(sentinels), -1))
    assert [i for i in inputs if i >= VOCAB_SIZE - 100] == sentinels
    assert all(g[1] for g in tgt_groups)  # no empty span
    # Replacing each sentinel of the inputs by its span gives back the tokens.
    spans = dict(tgt_groups)
    rebuilt = [t for i in inputs for t in (spans[i] if i in spans else [i])]
    assert rebuilt == list(range(3, 43))


def test_deterministic_in_seed_and_noise_position_varies():
  tokens = tf.range(3, 23)
  a = span_corruption.noise_mask(20, tf.constant([1, 2])).numpy()
  b = span_corruption.noise_mask(20, tf.constant([1, 2])).numpy()
  np.testing.assert_array_equal(a, b)
  starts = {
    int(np.argmax(span_corruption.noise_mask(20, tf.constant([s, 0])).numpy())) for s in range(30)
  }
  assert len(starts) > 5  # not always the tail
  del tokens


def test_short_sequences():
  for n in (0, 1):
    mask = span_corruption.noise_mask(n, tf.constant([0, 0]))
    assert mask.numpy().sum() == 0
  inputs, targets = span_corruption.corrupt(
    tf.constant([5, 6]), tf.constant([False, True]), VOCAB_SIZE
  )
  assert inputs.numpy().tolist() == [5, 2099] and targets.numpy().tolist() == [2099, 6]


def test_preprocessor_refreshes_pretokenized_texts():
  v = vocab.get_vocabulary()
  text = 'photo on a gray background: a yellow square What colour is the square? yellow'
  ds = tf.data.Dataset.from_tensors(
    {
      'inputs': tf.constant(v.encode(text), tf.int32),
      'inputs_pretokenized': text,
      'targets_pretokenized': '',
    }
  )
  with seqio.utils.map_seed_manager(3):
    ex = next(span_corruption.span_corruption_preprocessor(v)(ds).as_numpy_iterator())
  assert '<extra_id_0>' in ex['inputs_pretokenized'].decode()
  assert ex['targets_pretokenized'].decode().startswith('<extra_id_0>')
  assert v.decode(ex['inputs'].tolist()) == ex['inputs_pretokenized'].decode()
