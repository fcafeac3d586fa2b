"""The output features every PaLI seqio task shares, and the text preprocessors.

Each task (synthetic or real) emits, after preprocessing:

| feature | dtype | shape | |
|---|---|---|---|
| inputs | int32 | [Ti] | prompt ids, EOS appended (T5 convention) |
| targets | int32 | [To] | answer ids, EOS appended |
| image | float32 | [H, W, 3] | in [-1, 1]; zeros for text-only examples |
| has_image | float32 | [] | 1.0 / 0.0 |
| inputs_pretokenized, targets_pretokenized | string | [] | the texts (logs, metrics) |

All tasks of one mixture must share H = W (the mixture's image size).
`PaliFeatureConverter` turns these into the model batch of docs/CONTRACTS.md.
"""

from collections.abc import Mapping
from typing import Any

import numpy as np
import seqio
import tensorflow as tf

from pali_pax.tasks import vocab as vocab_lib

TEXT_FEATURES = ('inputs', 'targets')
# Set by the step-indexed train input (`pali_pax.tasks.step_input`): int64 [2]
# (data seed, global example index). Random preprocessors draw from it, so an
# example's randomness does not depend on its position in a tf.data stream.
EXAMPLE_SEED = 'example_seed'


def output_features(vocab: seqio.Vocabulary) -> dict[str, seqio.Feature]:
  """seqio output features of every PaLI task (one vocabulary for inputs and targets)."""
  return {
    'inputs': seqio.Feature(vocabulary=vocab, add_eos=True),
    'targets': seqio.Feature(vocabulary=vocab, add_eos=True),
    'image': seqio.ContinuousFeature(dtype=tf.float32, rank=3),
    'has_image': seqio.ContinuousFeature(dtype=tf.float32, rank=0),
  }


def example_seed(ex: Mapping[str, tf.Tensor], seed: tf.Tensor, salt: int) -> tf.Tensor:
  """The stateless seed [2] a random preprocessor uses for `ex`.

  `ex[EXAMPLE_SEED]` folded with `salt` (one salt per preprocessor) when the
  example carries one; otherwise `seed`, the one seqio's `map_over_dataset`
  hands out by stream position (eval / decode inputs).
  """
  if EXAMPLE_SEED in ex:
    return tf.random.experimental.stateless_fold_in(ex[EXAMPLE_SEED], salt)
  return seed


def tokenize_text(
  dataset: tf.data.Dataset, output_features: Mapping[str, seqio.Feature]
) -> tf.data.Dataset:
  """seqio preprocessor: tokenises 'inputs' / 'targets' only, keeping '*_pretokenized'.

  (seqio.preprocessors.tokenize would also "tokenise" and copy the image
  through its pass-through vocabulary.) EOS comes later, from
  `seqio.preprocessors.append_eos_after_trim`, so it survives truncation.
  """

  @tf.autograph.experimental.do_not_convert
  def fn(ex: Mapping[str, tf.Tensor]) -> dict[str, tf.Tensor]:
    ex = dict(ex)
    for key in TEXT_FEATURES:
      ex[f'{key}_pretokenized'] = ex[key]
      ex[key] = tf.cast(vocab_lib.encode_tf(output_features[key].vocabulary, ex[key]), tf.int32)
    return ex

  return dataset.map(fn, num_parallel_calls=tf.data.AUTOTUNE)


def _text(x: Any) -> str:
  if isinstance(x, bytes):
    return x.decode('utf-8')
  if isinstance(x, np.ndarray) and x.shape == ():
    return _text(x.item())
  return str(x)


def postprocess_text(
  output: Any, example: Mapping[str, Any] | None = None, is_target: bool = False
) -> str:
  """seqio postprocess_fn: decoded bytes -> stripped str (targets and predictions)."""
  del example, is_target
  return _text(output).strip()


def postprocess_references(
  output: Any, example: Mapping[str, Any] | None = None, is_target: bool = False
) -> str | list[str]:
  """seqio postprocess_fn for multi-reference data: targets -> all of example['texts'].

  Predictions stay one string; targets become the list of every reference
  (captions, the 10 VQA answers) when the example carries them.
  """
  if is_target and example is not None and 'texts' in example:
    refs = [_text(t).strip() for t in np.asarray(example['texts']).reshape(-1)]
    if refs:
      return refs
  return postprocess_text(output)
