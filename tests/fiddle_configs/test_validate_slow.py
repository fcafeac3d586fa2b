"""Every experiment on the synthetic tasks honours VOCAB_PATH, checked in a fresh process
(`validate` in this process: test_validate.py)."""

import ast
import subprocess
import sys
import textwrap

import pytest

from tests.runs import cli_env

pytestmark = pytest.mark.slow


# A fresh interpreter importing paxml.
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
  cmd = [sys.executable, '-c', script]
  proc = subprocess.run(cmd, capture_output=True, text=True, env=cli_env(), timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  checked = ast.literal_eval(proc.stdout.split('CHECKED ', 1)[1])
  assert {'PaliTinySynthetic', 'PaliMiniSynthetic', 'PaliTinySyntheticHighRes'} <= set(checked)
  assert 'Pali3BPretrain' in checked
