"""SeqIOEvalInput: paxml's SeqIOInput batches and targets, without tf.data autotuning."""

import numpy as np
from paxml import seqio_input
from praxis import base_hyperparams

from pali_pax.fiddle_configs import experiments
from pali_pax.tasks import eval_input
from tests.inputs import drain


def test_same_batches_and_targets_as_paxml_input_across_resets():
  exp = experiments.PaliTinySynthetic()
  decode_p = exp.decoder_datasets()[1]  # the VQA task
  assert decode_p.cls is eval_input.SeqIOEvalInput
  ours = base_hyperparams.instantiate(decode_p)
  paxml_p = decode_p.clone()
  paxml_p.cls = seqio_input.SeqIOInput
  theirs = base_hyperparams.instantiate(paxml_p)
  for inp in (ours, theirs):
    inp._gen_targets_artifacts()  # what paxml scores decodes against (no public accessor)
  assert not ours.dataset.options().autotune.enabled
  assert not ours.targets_ds.options().autotune.enabled
  assert theirs.dataset.options().autotune.enabled is not False  # paxml's default
  for _ in range(2):  # a decode round, then paxml's reset before the next one
    got, want = drain(ours), drain(theirs)
    assert len(got) == len(want) == 16  # the 512-example split, whatever DECODE_BATCHES
    for g, w in zip(got, want, strict=True):
      for key in w:
        np.testing.assert_array_equal(g[key], w[key], err_msg=key)
    ours.reset()
    theirs.reset()
  got, want = ours._get_targets(), theirs._get_targets()
  assert list(got) == list(want) and len(want) == 64  # DECODE_BATCHES=2 batches of 32
  for key, example in want.items():
    for field, value in example.items():
      np.testing.assert_array_equal(got[key][field], value, err_msg=f'{key} {field}')


def test_only_eval_and_decode_inputs_change_class():
  exp = experiments.PaliTinySynthetic()
  train, *evals = exp.datasets()
  assert train.cls is not eval_input.SeqIOEvalInput
  assert {e.cls for e in (*evals, *exp.decoder_datasets())} == {eval_input.SeqIOEvalInput}
