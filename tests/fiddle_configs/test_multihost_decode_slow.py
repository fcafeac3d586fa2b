"""Eval and decode on a pod in miniature count every example of the split exactly once.

One checkpoint (a short 1-process COCO-captions run on a generated folder whose
13 validation images divide by neither the per-host nor the global batch) is
evaluated and decoded with paxml's `--mode=decode_once --eval_during_decode` by
1 process and by 2 processes (`pali-pax launch-local`, DCN mesh [1,2,1]). The
2-process job must write its decode file once (process 0, shard 0), with one row
per validation image, the same rows as the 1-process job; and its eval must see
the same target tokens (`num_predictions` is an integer count per batch, so a
duplicated or lost example changes it) and give the same CIDEr. Slow: three
paxml.main runs, ~6-10 min on the 2-core machine (`make test-slow`).
"""

import glob
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from pali_pax import evaluation

pytestmark = pytest.mark.slow

EXP = 'PaliFinetuneCocoCaptionsTiny'
TASK = 'pali_coco_captions'
STEPS = 30
N_VAL = 13  # neither a multiple of 4 (rows per host) nor of 8 (global batch)
TIMEOUT_S = 1500


def _flags(data_dir) -> list[str]:
  return [
    f'--exp={EXP}',
    f'--fdl.DATA_DIR={data_dir}',
    f'--fdl.NUM_TRAIN_STEPS={STEPS}',
    f'--fdl.CHECKPOINT_EVERY={STEPS}',
    f'--fdl.EVAL_EVERY={STEPS}',
    '--fdl.BATCH_SIZE=8',
    '--fdl.EVAL_BATCH_SIZE=8',
    '--fdl.EVAL_BATCHES=None',  # the whole split, as decode reads it
  ]


def _run(job_dir, flags, processes: int = 1) -> str:
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2', JAX_PLATFORMS='cpu')
  env['XLA_FLAGS'] = '--xla_force_host_platform_device_count=1'
  base = [sys.executable, '-m', 'pali_pax.cli']
  flags = [*flags, f'--job_log_dir={job_dir}']
  if processes == 1:
    cmd = [*base, 'train', *flags]
  else:
    launch = [f'--processes={processes}', '--devices_per_process=1', f'--timeout={TIMEOUT_S}']
    cmd = [*base, 'launch-local', *launch, '--', *flags]
  proc = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S + 60, env=env)
  log = proc.stdout + proc.stderr
  assert proc.returncode == 0, log[-4000:]
  return log


@pytest.fixture(scope='module')
def runs(tmp_path_factory, make_coco_dir):
  root = tmp_path_factory.mktemp('multihost_decode')
  data = make_coco_dir(str(root / 'coco'), n_train=32, n_val=N_VAL)
  flags = _flags(data)
  _run(root / 'train', [*flags, '--mode=train'])
  once = [
    '--mode=decode_once',
    f'--restore_checkpoint_dir={root / "train" / "checkpoints"}',
    '--eval_during_decode',
  ]
  _run(root / 'one', [*flags, *once])
  _run(root / 'two', [*flags, *once, '--fdl.DCN_MESH_SHAPE=[1,2,1]'], processes=2)
  return {'one': root / 'one', 'two': root / 'two'}


def _decode_rows(job_dir) -> list[dict]:
  files = sorted(glob.glob(os.path.join(job_dir, 'decoder_out', TASK, '*.jsonl')))
  assert [os.path.basename(f) for f in files] == [f'decoder_out_{STEPS}_shard_0.jsonl'], files
  with open(files[0]) as f:
    return [json.loads(line) for line in f if line.strip()]


def _scalars(job_dir) -> dict[str, float]:
  """{folder/tag: value} of the eval and decode summaries (one step: STEPS)."""
  out = {}
  for folder, tags in evaluation.summary_scalars(str(job_dir)).items():
    for tag, (step, value) in tags.items():
      assert step == STEPS, (folder, tag, step)
      out[f'{folder}/{tag}'] = value
  return out


def _rows_key(row: dict) -> tuple:
  return (row['prefix'], row['target'], row['decoded_substr'])


def test_decode_file_is_written_once_with_one_row_per_example(runs):
  one, two = _decode_rows(runs['one']), _decode_rows(runs['two'])
  assert len(one) == N_VAL
  assert len(two) == N_VAL
  # The same checkpoint decodes the same images: the same rows, whatever the host count.
  assert sorted(map(_rows_key, two)) == sorted(map(_rows_key, one))


def test_eval_and_decode_metrics_cover_each_example_once(runs):
  one, two = _scalars(runs['one']), _scalars(runs['two'])
  counts = {k: v for k, v in one.items() if k.endswith('num_predictions')}
  cider = {k: v for k, v in one.items() if 'cider' in k.lower()}
  assert counts and cider, sorted(one)
  assert sorted(two) == sorted(one)
  for key, value in counts.items():
    assert two[key] == value, (key, two[key], value)  # integer token counts: exact
  for key, value in cider.items():
    np.testing.assert_allclose(two[key], value, rtol=1e-6, err_msg=key)
