"""Eval and decode on a pod in miniature count every example of the split exactly once.

One checkpoint (a short 1-process COCO-captions run on a generated folder whose
13 validation images divide by neither the per-host nor the global batch) is
evaluated and decoded with paxml's `--mode=decode_once --eval_during_decode` by
1 process and by 2 processes (`pali-pax launch-local`, DCN mesh [1,2,1]). The
2-process job must write its decode file once (process 0, shard 0), with one row
per validation image, the same rows as the 1-process job, and the same decode
metrics; in both jobs the eval loss must sum over the 13 real examples only
(paxml pads the last batches with copies of real examples, weight 0). Slow: three
paxml.main runs, ~6-10 min on the 2-core machine (`make test-slow`).
"""

import glob
import json
import os

import numpy as np
import pytest

from pali_pax import evaluation, launch_local
from tests import numerics
from tests.runs import run_cli

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
  env = launch_local.process_env(devices_per_process=1)  # launch-local's own, for both runs
  flags = [*flags, f'--job_log_dir={job_dir}']
  if processes == 1:
    return run_cli('train', *flags, env=env, timeout=TIMEOUT_S + 60).log
  launch = [f'--processes={processes}', '--devices_per_process=1', f'--timeout={TIMEOUT_S}']
  return run_cli('launch-local', *launch, '--', *flags, env=env, timeout=TIMEOUT_S + 60).log


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
  files = sorted(glob.glob(os.path.join(job_dir, '*_out', TASK, '*_out_*.jsonl')))
  names = [os.path.relpath(f, job_dir) for f in files]
  want = [f'{m}_out/{TASK}/{m}_out_{STEPS}_shard_0.jsonl' for m in ('decoder', 'eval')]
  assert names == want, names
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
  # Not 'target': which reference trains/scores the loss is drawn per example by seqio,
  # seeded by its shard; 'seqio_targets' are all the image's references.
  return (row['prefix'], tuple(row['seqio_targets']), row['decoded_substr'])


def test_decode_file_is_written_once_with_one_row_per_example(runs):
  one, two = _decode_rows(runs['one']), _decode_rows(runs['two'])
  assert len(one) == N_VAL
  assert len(two) == N_VAL
  # The same checkpoint decodes the same images: the same rows, whatever the host count.
  assert sorted(map(_rows_key, two)) == sorted(map(_rows_key, one))


def _eval_rows(job_dir) -> list[dict]:
  """Rows of paxml's eval_out file that are real examples (padding has provenance -1)."""
  path = os.path.join(job_dir, 'eval_out', TASK, f'eval_out_{STEPS}_shard_0.jsonl')
  with open(path) as f:
    rows = [json.loads(line) for line in f if line.strip()]
  return [r for r in rows if r['_seqio_provenance/shard_index'] >= 0]


@pytest.mark.parametrize('job', ['one', 'two'])
def test_eval_metrics_count_each_example_once(runs, job):
  real = _eval_rows(runs[job])
  ids = {
    (r['_seqio_provenance/shard_index'], r['_seqio_provenance/index_within_shard']) for r in real
  }
  assert len(real) == len(ids) == N_VAL
  # The eval's summed token NLL is the sum over the real examples only: the padding
  # rows (copies of real ones, eval_sample_weights 0) add nothing. Float32 sums of
  # ~N_VAL * 16 terms, summed again per batch and over batches.
  scalars = _scalars(runs[job])
  tag = f'eval_test_{TASK}/Metrics/log_pplx'
  total_nll = scalars[tag] * scalars[f'{tag}-weight']
  rtol = 4 * numerics.gamma(N_VAL * 16)
  np.testing.assert_allclose(-sum(r['scores'] for r in real), total_nll, rtol=rtol)


def test_decode_metrics_are_the_same_for_one_and_two_processes(runs):
  one, two = _scalars(runs['one']), _scalars(runs['two'])
  decode = {k: v for k, v in one.items() if k.startswith('decode_test_')}
  assert any('cider' in k.lower() for k in decode), sorted(one)
  assert sorted(k for k in two if k.startswith('decode_test_')) == sorted(decode)
  for key, value in decode.items():
    # decode_length is a mean over real rows weighted by their count; CIDEr is
    # computed from the same rows: neither may depend on how hosts split the split.
    np.testing.assert_allclose(two[key], value, rtol=1e-6, err_msg=key)
