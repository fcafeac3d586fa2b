"""paxml's SeqIOInput for eval and decode programs, without tf.data autotuning.

paxml resets an eval / decode input before every round: it drops the iterators
of the previous round and makes new ones (`SeqIOInput.reset`). Deleting a
tf.data iterator whose pipeline is autotuned (any `AUTOTUNE` map or prefetch:
the readers', seqio's and paxml's own) waits for the autotuning thread, which
sleeps between optimisation passes for a period that doubles up to a minute as
the iterator ages. So a round could stall for up to a minute on a deletion
(25-50 s in the demo's last round; `python -m benchmarks.eval_reset` measures
both classes side by side).

Without autotuning, `AUTOTUNE` parallelism falls back to tf.data's static
default (the machine's cores) and nothing waits on deletion. Eval and decode
inputs read a split once per round, so the tuning bought nothing there; the
train input is never reset and keeps it.
"""

import tensorflow as tf
from paxml import seqio_input


def _no_autotune(ds: tf.data.Dataset) -> tf.data.Dataset:
  options = tf.data.Options()
  options.autotune.enabled = False
  return ds.with_options(options)


class SeqIOEvalInput(seqio_input.SeqIOInput):
  """`SeqIOInput` whose data and targets pipelines run without autotuning.

  Same hparams and batches as paxml's class (tested); only the tf.data option
  `autotune.enabled` differs, so iterators are deleted at once on `reset`.
  """

  def _get_dataset(self) -> tf.data.Dataset:
    return _no_autotune(super()._get_dataset())

  def _gen_targets_dataset(self) -> None:
    super()._gen_targets_dataset()
    self.targets_ds = _no_autotune(self.targets_ds)
