"""The TrueType OCR data set: deterministic, readable by the TextVQA reader, legible."""

import io
import json

import numpy as np
import pytest
from PIL import Image

from benchmarks import ocr_transfer_data as ocr
from pali_pax.tasks import readers
from pali_pax.tasks import synthetic_words as words


def test_the_data_set_is_deterministic(tmp_path):
  for folder, seed in (('a', 3), ('b', 3), ('c', 4)):
    ocr.write(str(tmp_path / folder), seed=seed, n_train=6, n_val=3, style='rgb')
  for name in ('TextVQA_0.5.1_train.json', 'TextVQA_0.5.1_val.json', 'train_images/val_00001.jpg'):
    assert (tmp_path / 'a' / name).read_bytes() == (tmp_path / 'b' / name).read_bytes()
    assert (tmp_path / 'a' / name).read_bytes() != (tmp_path / 'c' / name).read_bytes()


def test_the_textvqa_reader_reads_every_question_with_its_image(tmp_path):
  root = ocr.write(str(tmp_path), seed=0, n_train=5, n_val=4)
  src = readers.textvqa_source(
    {
      split: (f'{root}/TextVQA_0.5.1_{name}.json', f'{root}/train_images')
      for split, name in (('train', 'train'), ('validation', 'val'))
    }
  )
  ids = set()
  for split, n in (('train', 5), ('validation', 4)):
    got = list(src.get_dataset(split, shuffle=False).as_numpy_iterator())
    assert len(got) == n
    for ex in got:
      texts = [t.decode() for t in ex['texts']]
      assert len(texts) == 10 and len(set(texts)) == 1 and texts[0] in words.OCR_WORDS
      assert ex['question'].decode() == ocr.QUESTION
      image = Image.open(io.BytesIO(ex['image']))
      assert image.size == (ocr.SIZE, ocr.SIZE) and image.mode == 'RGB'
      ids.add(ex['image_id'].decode())
  assert len(ids) == 9  # train and val never share an image


@pytest.mark.parametrize('style', sorted(ocr.STYLES))
def test_text_and_background_differ_by_the_contrast_bound(style):
  rng = np.random.default_rng(0)
  for word in words.OCR_WORDS[:10]:
    img = np.asarray(ocr.render(word, rng, ocr.STYLES[style]), np.float32)
    level = img.mean(axis=-1)  # gray level per pixel
    # The background fills the corners' majority; the ink is the farthest level from it.
    background = np.median(level)
    ink = level.flat[np.argmax(np.abs(level - background))]
    # JPEG is not involved here; anti-aliasing only blends, so the full ink level occurs.
    assert abs(ink - background) >= ocr.MIN_CONTRAST - 1, (word, ink, background)
    # The word is drawn inside the canvas (some ink pixels, and not everything is ink).
    inked = np.abs(level - background) > ocr.MIN_CONTRAST / 2
    assert 0.02 < inked.mean() < 0.6, (word, inked.mean())


def test_the_answers_name_the_rendered_word(tmp_path):
  root = ocr.write(str(tmp_path), seed=1, n_train=0, n_val=40)
  data = json.loads((tmp_path / 'TextVQA_0.5.1_val.json').read_text())['data']
  assert root == str(tmp_path) and len(data) == 40
  # Regenerating with the same seed draws the same word before each rendering.
  rng = np.random.default_rng(1)
  for item in data:
    word = words.OCR_WORDS[int(rng.integers(len(words.OCR_WORDS)))]
    ocr.render(word, rng)
    assert item['answers'][0] == word


def test_an_unknown_style_is_refused_by_name(tmp_path):
  with pytest.raises(ValueError, match="unknown style 'neon'"):
    ocr.write(str(tmp_path), seed=0, n_train=1, n_val=1, style='neon')
