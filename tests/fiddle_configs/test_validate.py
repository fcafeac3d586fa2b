"""PaliExperiment.validate (called by paxml.main): mesh vs devices, VOCAB_PATH honoured."""

import pytest
import seqio

from pali_pax.core import errors
from pali_pax.fiddle_configs import experiment_base, experiments


def test_mesh_larger_than_the_machine_names_the_attribute():
  with pytest.raises(errors.ConfigError, match=r'ICI_MESH_SHAPE=\[1, 2, 4\].*8 devices.*has 1'):
    experiments.PaliTinySyntheticSpmd().validate()
  with pytest.raises(errors.ConfigError, match='DCN_MESH_SHAPE'):
    experiments.PaliTinySynthetic(DCN_MESH_SHAPE=(1, 0, 1)).validate()


def test_default_vocabulary_validates_and_registers_what_the_experiment_reads():
  exp = experiments.PaliTinySynthetic()
  exp.validate()
  names = (exp.TRAIN_MIXTURE, *exp.EVAL_TASKS, *exp.DECODE_TASKS)
  for name in names:
    task = seqio.get_mixture_or_task(name)
    for feature in ('inputs', 'targets'):
      assert task.output_features[feature].vocabulary.vocab_size == exp.VOCAB_SIZE
  # A model vocabulary smaller than the tasks' is refused, naming both.
  with pytest.raises(errors.ConfigError, match=r'VOCAB_SIZE=1000'):
    experiments.PaliTinySynthetic(VOCAB_SIZE=1000).validate()
  # A mesh that covers exactly this machine's device passes; one that does not is refused.
  experiments.PaliTinySynthetic(ICI_MESH_SHAPE=(1, 1, 1), DCN_MESH_SHAPE=(1, 1, 1)).validate()
  with pytest.raises(errors.ConfigError, match='ICI_MESH_SHAPE'):
    experiments.PaliTinySynthetic(ICI_MESH_SHAPE=(1, 1, 2)).validate()


class _IgnoresVocabPath(experiment_base.PaliExperiment):
  """Reads the default synthetic mixture, which is registered with the shipped vocabulary."""

  VOCAB_SIZE = 2100


def test_vocab_path_that_tasks_ignore_is_rejected(other_vocab):
  with pytest.raises(errors.ConfigError, match=r"VOCAB_PATH='.*other.model' is not the vocab"):
    _IgnoresVocabPath(VOCAB_PATH=other_vocab).validate()
  with pytest.raises(errors.ConfigError, match='250 ids, more than VOCAB_SIZE=200'):
    _IgnoresVocabPath(VOCAB_PATH=other_vocab, VOCAB_SIZE=200).validate()
  with pytest.raises(errors.ConfigError, match='VOCAB_PATH=.*nope.model'):
    _IgnoresVocabPath(VOCAB_PATH='/nope.model').validate()
