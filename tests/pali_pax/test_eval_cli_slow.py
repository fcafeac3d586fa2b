"""`pali-pax eval`'s decode_split on a JSONL set mixing image and text-only rows."""

import json

import numpy as np
import pytest
import seqio
from PIL import Image

from pali_pax.cli import eval as eval_cli
from pali_pax.core import batch as batch_lib
from pali_pax.fiddle_configs import experiments
from pali_pax.inference import Predictor
from pali_pax.tasks import finetune_tasks
from pali_pax.tasks import vocab as vocab_lib

pytestmark = pytest.mark.slow

ROWS = [
  {'image': 'red.jpg', 'prompt': 'Describe:', 'targets': 'red', 'id': 'i1'},
  {'prompt': 'Translate to de: red', 'targets': 'rot', 'id': 't1'},
  {'image': 'blue.png', 'prompt': 'Describe:', 'targets': 'blue', 'id': 'i2'},
  {'prompt': 'Translate to fr: blue', 'targets': 'bleu', 'id': 't2'},
]
STEPS = 5


@pytest.fixture(scope='module')
def predictor(mt5_hf_2100, vit_npz_tiny8):
  pred = Predictor.from_components(
    mt5=mt5_hf_2100, vit=vit_npz_tiny8, vocab=vocab_lib.DEFAULT_VOCAB_PATH, seed=3
  )
  # decode_split reads the decode settings from the job's experiment; 3 rows per
  # batch makes the second batch padded.
  pred.experiment = experiments.PaliTinySynthetic(EVAL_BATCH_SIZE=3, MAX_DECODE_LEN=STEPS)
  return pred


@pytest.fixture(scope='module')
def task(tmp_path_factory):
  root = tmp_path_factory.mktemp('eval_cli_jsonl')
  Image.new('RGB', (12, 8), (250, 0, 0)).save(root / 'red.jpg')
  Image.new('RGB', (9, 9), (0, 0, 250)).save(root / 'blue.png')
  text = '\n'.join(json.dumps(r) for r in ROWS) + '\n'
  for name in ('train.jsonl', 'val.jsonl'):
    (root / name).write_text(text)
  finetune_tasks.register_jsonl_tasks(str(root), image_size=32, suffix='_evalcli')
  return seqio.TaskRegistry.get('pali_jsonl_caption_evalcli')


def test_text_only_rows_decode_without_an_image(predictor, task):
  rows = eval_cli.decode_split(predictor, task, 'validation')
  assert [r['id'] for r in rows] == ['i1', 't1', 'i2', 't2']
  exp = predictor.experiment
  lengths = {'inputs': exp.INPUT_LEN, 'targets': exp.TARGET_LEN}
  examples = list(task.get_dataset(lengths, split='validation', shuffle=False).as_numpy_iterator())
  assert [float(ex['has_image']) for ex in examples] == [1.0, 0.0, 1.0, 0.0]
  blank_differs = False
  for row, ex in zip(rows, examples, strict=True):
    ids = batch_lib.pad_ids([ex['inputs']], exp.INPUT_LEN, 'inputs')
    # Each row alone: with its image, or text only (no image at all).
    image = ex['image'][None] if ex['has_image'] else None
    (want,) = predictor.generate_ids(ids, images=image, max_decode_steps=STEPS)
    text = predictor.vocab.decode([int(t) for t in want if t != batch_lib.EOS_ID])
    assert row['prediction'] == task.postprocess_fn(text, example=ex, is_target=False)
    if not ex['has_image']:
      (blank,) = predictor.generate_ids(ids, images=ex['image'][None], max_decode_steps=STEPS)
      blank_differs |= not np.array_equal(blank, want)
  # The blank image, seen as an image, changes what is decoded: so the check can fail.
  assert blank_differs
