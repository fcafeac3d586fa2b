"""The tiny two-phase recipe through `paxml.main`: 32 px, then 48 px from its checkpoint.

Phase 1 trains PaliTinySynthetic (32 px); phase 2 (PaliTinySyntheticHighRes,
48 px) starts from its checkpoints with INIT_FROM, which resamples the ViT
position embedding 4x4 -> 6x6 and copies every other variable. Phase 2's first
eval (step 1: the first update runs at learning rate 0, the start of the
warm-up) is the model right after init: its loss on the 48 px validation
mixture must be close to phase 1's final loss at 32 px and far below a freshly
initialised 48 px model's. Three paxml.main runs: `make test-slow`.
"""

import os

import pytest

from pali_pax import evaluation
from tests.runs import cli_env, run_cli

pytestmark = pytest.mark.slow

PHASE1_STEPS = 150


def _train(job_dir, experiment: str, *flags: str) -> float:
  """Runs paxml.main on a registered experiment; returns its latest eval loss."""
  os.makedirs(job_dir, exist_ok=True)
  config = f"--fdl_config=pali_pax.fiddle_configs.experiments.experiment_config('{experiment}')"
  args = ['train', config, *flags, f'--job_log_dir={job_dir}', '--mode=train', '--eval_on_test']
  run_cli(*args, env=cli_env(JAX_PLATFORMS='cpu'), log_path=os.path.join(job_dir, 'run.log'))
  evals = {
    k: v for k, v in evaluation.summary_scalars(str(job_dir)).items() if k.startswith('eval_test')
  }
  assert len(evals) == 1, sorted(evals)
  (scalars,) = evals.values()
  return scalars['loss'][1]


def test_high_res_phase_starts_where_the_low_res_phase_ended(tmp_path):
  low = _train(
    tmp_path / 'low',
    'PaliTinySynthetic',
    f'--fdl.NUM_TRAIN_STEPS={PHASE1_STEPS}',
    f'--fdl.EVAL_EVERY={PHASE1_STEPS}',
    f'--fdl.CHECKPOINT_EVERY={PHASE1_STEPS}',
  )
  one_step = ['--fdl.NUM_TRAIN_STEPS=1', '--fdl.EVAL_EVERY=1', '--fdl.CHECKPOINT_EVERY=1']
  high = _train(
    tmp_path / 'high',
    'PaliTinySyntheticHighRes',
    f"--fdl.INIT_FROM='{tmp_path / 'low' / 'checkpoints'}'",  # Fiddle flags take literals
    *one_step,
  )
  fresh = _train(tmp_path / 'fresh', 'PaliTinySyntheticHighRes', *one_step)
  # Fresh: about ln(vocab 2100) = 7.65 nats. Phase 1 learns a large part of that away;
  # the high-res start keeps at least 3/4 of what phase 1 learned (the images differ:
  # rendered at 48 px, seen through a resampled grid).
  assert low < fresh - 1.0, (low, fresh)
  assert high < low + 0.25 * (fresh - low), (low, high, fresh)
  assert high < 0.8 * fresh, (high, fresh)
