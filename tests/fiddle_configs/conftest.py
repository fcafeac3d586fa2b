"""Fixtures of the experiment tests.

other_vocab  a second SentencePiece model (150 pieces + 100 sentinels = 250 ids) with
             mT5's special ids: an experiment's VOCAB_PATH that is not the shipped one
xm3600_dirs  (COCO captions dir, XM3600 dir): 8 + 4 COCO images, XM3600_ROWS as files
"""

import json

import numpy as np
import pytest
import sentencepiece as spm
from PIL import Image


@pytest.fixture(scope='session')
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


# Two images; 'de' and 'en' caption both, 'zh' only the second.
XM3600_ROWS = [
  {'image/key': 'k1', 'de': {'caption': ['ein Kreis']}, 'en': {'caption': ['a circle']}},
  {
    'image/key': 'k2',
    'de': {'caption': ['ein Quadrat']},
    'en': {'caption': ['a square', 'one square']},
    'zh': {'caption': ['一个正方形']},
  },
]


def _write_xm3600(root) -> str:
  (root / 'images').mkdir(parents=True)
  for k, row in enumerate(XM3600_ROWS):
    pixels = np.full((20, 24, 3), 40 * (k + 1), np.uint8)
    Image.fromarray(pixels).save(root / 'images' / f'{row["image/key"]}.jpg')
  text = '\n'.join(json.dumps(r, ensure_ascii=False) for r in XM3600_ROWS)
  (root / 'captions.jsonl').write_text(text + '\n', encoding='utf-8')
  return str(root)


@pytest.fixture(scope='module')
def xm3600_dirs(tmp_path_factory, make_coco_dir):
  root = tmp_path_factory.mktemp('xm3600_exp')
  return make_coco_dir(str(root / 'coco'), n_train=8, n_val=4), _write_xm3600(root / 'xm3600')
