"""PaliExperiment.validate (called by paxml.main): mesh vs devices, VOCAB_PATH honoured."""

import ast
import os
import subprocess
import sys
import textwrap

import pytest
import sentencepiece as spm
import seqio

from pali_pax.core import errors
from pali_pax.fiddle_configs import experiment_base, experiments


@pytest.fixture(scope='module')
def other_vocab(tmp_path_factory):
  """A second SentencePiece model (150 pieces + 100 sentinels = 250 ids), mT5's special ids."""
  folder = tmp_path_factory.mktemp('spm')
  text = folder / 'text.txt'
  words = [f'{w}{i}' for i in range(400) for w in ('red', 'blue', 'circle')]
  text.write_text('\n'.join([' '.join(words[i : i + 9]) for i in range(0, len(words), 9)]))
  spm.SentencePieceTrainer.train(
    input=str(text),
    model_prefix=str(folder / 'other'),
    vocab_size=150,
    pad_id=0,
    eos_id=1,
    unk_id=2,
    bos_id=-1,
    minloglevel=2,
  )
  return str(folder / 'other.model')


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


@pytest.mark.slow  # a fresh interpreter importing paxml
def test_every_synthetic_experiment_honours_vocab_path(other_vocab):
  """Each experiment on the synthetic tasks registers them with its VOCAB_PATH.

  In a fresh process (this one's synthetic tasks use the shipped vocabulary):
  `validate` checks that every task the experiment reads uses VOCAB_PATH, so an
  experiment whose `register_tasks` dropped it (PaliTinySyntheticHighRes did) fails.
  """
  script = textwrap.dedent(
    f"""
    import seqio
    from pali_pax.fiddle_configs import registry
    checked = []
    for name in registry.names():
      cls = registry.get_experiment(name)
      # Pali17BHighRes: Pali17BPretrain's task names at 588 px (one image size per process).
      if not cls.TRAIN_MIXTURE.startswith('pali_synthetic_mixture') or name == 'Pali17BHighRes':
        continue
      exp = cls(VOCAB_PATH={other_vocab!r}, ICI_MESH_SHAPE=(1, 1, 1), DCN_MESH_SHAPE=None)
      exp.validate()
      task = seqio.get_mixture_or_task(exp.TRAIN_MIXTURE).tasks[0]
      vocab = task.output_features['targets'].vocabulary
      assert (vocab.sentencepiece_model_file, vocab.vocab_size) == ({other_vocab!r}, 250), name
      checked.append(name)
    print('CHECKED', sorted(checked))
    """
  )
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2')
  proc = subprocess.run(
    [sys.executable, '-c', script], capture_output=True, text=True, env=env, timeout=600
  )
  assert proc.returncode == 0, proc.stderr[-3000:]
  checked = ast.literal_eval(proc.stdout.split('CHECKED ', 1)[1])
  assert {'PaliTinySynthetic', 'PaliMiniSynthetic', 'PaliTinySyntheticHighRes'} <= set(checked)
  assert 'Pali3BPretrain' in checked
