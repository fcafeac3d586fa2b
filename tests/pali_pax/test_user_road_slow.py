"""The README's "Fine-tune on your data" walk-through, on a small generated COCO folder.

One `pali-pax train` run (module fixture, ~3-6 min on the loaded 2-core machine) with
`--exp=... --fdl.*` flags, then `pali-pax eval`, `Predictor.from_checkpoint` and
`pali-pax predict` on its job dir. Slow: `make test-slow`.
"""

import json
import os
import shutil

import numpy as np
import pytest

from tests.runs import cli_env, run_cli

pytestmark = pytest.mark.slow

EXP = 'PaliFinetuneCocoCaptionsTiny'
STEPS = 300
N_VAL = 40  # not a multiple of the batch (32): the last decode batch is padded
TIMEOUT_S = 1500  # paxml can hang instead of exiting when a thread dies
PROMPT = 'Generate caption in EN:'


def _cli(*args, cache=None):
  return run_cli(*args, env=cli_env(PALI_PAX_CACHE_DIR=str(cache)), timeout=TIMEOUT_S).stdout


@pytest.fixture(scope='module')
def road(tmp_path_factory, make_coco_dir):
  root = tmp_path_factory.mktemp('road')
  data = make_coco_dir(str(root / 'coco'), n_train=160, n_val=N_VAL)
  job = root / 'job'
  cache = root / 'jax_cache'
  _cli(
    'train',
    f'--exp={EXP}',
    f'--fdl.DATA_DIR={data}',  # unquoted string
    f'--fdl.NUM_TRAIN_STEPS={STEPS}',
    f'--fdl.EVAL_EVERY={STEPS}',
    f'--fdl.CHECKPOINT_EVERY={STEPS}',
    f'--job_log_dir={job}',
    '--eval_on_test',
    '--decode_during_train',
    cache=cache,
  )
  out = _cli('eval', job, '--task', 'pali_coco_captions', cache=cache)
  return {'data': data, 'job': job, 'cache': cache, 'eval_stdout': out}


def _val_ids(data):
  with open(os.path.join(data, 'annotations', 'captions_val2014.json')) as f:
    ann = json.load(f)
  refs = {}
  for a in ann['annotations']:
    refs.setdefault(str(a['image_id']), []).append(a['caption'])
  files = {str(im['id']): im['file_name'] for im in ann['images']}
  return refs, files


def test_train_recorded_the_flags_and_they_took_effect(road):
  with open(road['job'] / 'pali_pax.json') as f:
    meta = json.load(f)
  assert meta['experiment'] == EXP
  assert meta['overrides']['DATA_DIR'] == road['data']
  assert meta['overrides']['NUM_TRAIN_STEPS'] == STEPS
  assert meta['vocabulary']['size'] == meta['vocabulary']['model_vocab_size'] == 2100
  steps = sorted(os.listdir(road['job'] / 'checkpoints'))
  assert steps[-1] == f'checkpoint_{STEPS:08d}'  # not the class's 1000 steps
  assert os.listdir(road['cache'])  # compiled programs were cached


def test_paxml_decode_program_covered_the_whole_split(road):
  folder = road['job'] / 'decoder_out' / 'pali_coco_captions'
  latest = sorted(folder.glob(f'decoder_out_{STEPS}_shard_0*'))
  assert latest, list(folder.iterdir())
  with open(latest[0]) as f:
    rows = [json.loads(line) for line in f if line.strip()]
  with_targets = [r for r in rows if any(k.startswith('seqio_') for k in r)]
  assert len(with_targets) == N_VAL


def test_eval_writes_every_row_with_references_and_labelled_metrics(road):
  refs, _ = _val_ids(road['data'])
  stem = road['job'] / 'eval' / f'pali_coco_captions.validation.step{STEPS}'
  with open(f'{stem}.predictions.json') as f:
    rows = json.load(f)
  with open(f'{stem}.metrics.json') as f:
    record = json.load(f)
  assert sorted(r['id'] for r in rows) == sorted(refs)
  for r in rows:
    assert r['prompt'] == PROMPT and sorted(r['references']) == sorted(refs[r['id']])
  metrics = record['metrics']
  assert record['num_examples'] == N_VAL and record['step'] == STEPS
  assert metrics['cider_x100'] == pytest.approx(100 * metrics['cider_pycocoevalcap'])
  assert (
    'CIDEr x100' in road['eval_stdout'] and 'CIDEr (pycocoevalcap value)' in road['eval_stdout']
  )
  # Independent of the metric code: the captions name the image's colour and shape.
  right = [
    r['references'][0].split()[1] in r['prediction'].split()
    and r['references'][0].split()[2] in r['prediction'].split()
    for r in rows
  ]
  assert np.mean(right) > 0.5, rows[:5]  # chance: 1/8
  assert metrics['cider_x100'] > 50


def test_from_checkpoint_and_predict_rebuild_the_trained_model(road):
  from pali_pax.inference import Predictor
  from pali_pax.tasks import image_ops

  refs, files = _val_ids(road['data'])
  with open(
    road['job'] / 'eval' / f'pali_coco_captions.validation.step{STEPS}.predictions.json'
  ) as f:
    by_id = {r['id']: r['prediction'] for r in json.load(f)}
  ids = sorted(refs)[:3]
  paths = [os.path.join(road['data'], 'val2014', files[i]) for i in ids]
  p = Predictor.from_checkpoint(str(road['job']))
  assert p.image_size == 32 and p.vocab_size == 2100
  images = np.stack([image_ops.load_image(x, p.image_size) for x in paths])
  texts = p.generate(images, [PROMPT] * len(ids), max_decode_steps=p.experiment.MAX_DECODE_LEN)
  assert texts == [by_id[i] for i in ids]  # same model, same decode as `pali-pax eval`
  out = _cli(
    'predict',
    road['job'],
    *sum((['--image', x] for x in paths), []),
    '--prompt',
    PROMPT,
    cache=road['cache'],
  )
  assert out.strip().splitlines() == [f'{x}\t{t}' for x, t in zip(paths, texts, strict=True)]


def test_a_mismatched_model_is_an_error_naming_the_variable(road, tmp_path):
  from pali_pax.core.errors import CheckpointMismatchError
  from pali_pax.inference import Predictor

  other = tmp_path / 'job'
  shutil.copytree(road['job'] / 'checkpoints', other / 'checkpoints')
  with open(road['job'] / 'pali_pax.json') as f:
    meta = json.load(f)
  meta['overrides']['VOCAB_SIZE'] = 2200
  (other / 'pali_pax.json').write_text(json.dumps(meta))
  # The first (sorted) variable with a vocabulary dimension: the [d_model, vocab] output layer.
  expected = r'mt5\.softmax\.logits_ffn\.linear\.w has shape \(32, 2100\) .* but \(32, 2200\)'
  with pytest.raises(CheckpointMismatchError, match=expected):
    Predictor.from_checkpoint(str(other))
