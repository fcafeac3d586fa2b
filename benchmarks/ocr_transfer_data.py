"""Words rendered with a TrueType font, written as a TextVQA 0.5.1 data set (issue 23 item 2).

`write(root, seed, n_train, n_val)` writes, in the layout `PaliFinetuneTextVqa*` reads
(DATA_DIR = root, docs/data_format.md):

    root/TextVQA_0.5.1_train.json   {"dataset_name": "textvqa", "dataset_version": "0.5.1",
    root/TextVQA_0.5.1_val.json      "data": [{"image_id", "question", "question_id",
                                               "answers": [10 x the word]}, ...]}
    root/train_images/<image_id>.jpg (both splits, as TextVQA keeps its val images there)

Each SIZE x SIZE image holds one word of the demo's OCR vocabulary
(`synthetic_words.OCR_WORDS`) drawn with DejaVu Sans, not the font the synthetic
pretraining renders with, at a random position; the STYLES set the rest:

  plain  black text on light gray (the pretraining's polarity), 12 px
  gray   random gray levels for text and background, 10-14 px
  rgb    independent random RGB colours for text and background, 10-14 px

In 'gray' and 'rgb' the mean levels of text and background differ by at least
MIN_CONTRAST (otherwise both are drawn again). The question is one the pretraining
never asked. JPEG at quality 100 without chroma subsampling: at 32 px, 4:2:0
subsampling smears the strokes of a 10 px glyph.

Deterministic: the files are a function of (seed, n_train, n_val, size) and the font
file; train and val come from one generator and never share an image.
"""

import dataclasses
import functools
import json
import os

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from pali_pax.core import errors
from pali_pax.tasks import synthetic_words as words

QUESTION = 'what is written?'
SIZE = 32  # pixels: the tiny model's image size
MIN_CONTRAST = 150  # least difference of mean RGB level between text and background
PLAIN_TEXT, PLAIN_BACKGROUND = (20, 20, 20), (235, 235, 235)


@dataclasses.dataclass(frozen=True)
class Style:
  """How words are drawn.

  Attributes:
    font_px: inclusive range of the font size in pixels.
    colours: 'plain' (PLAIN_TEXT on PLAIN_BACKGROUND), 'gray' (random gray levels) or
      'rgb' (random RGB colours).
  """

  font_px: tuple[int, int]
  colours: str


STYLES = {
  'plain': Style((12, 12), 'plain'),
  'gray': Style((10, 14), 'gray'),
  'rgb': Style((10, 14), 'rgb'),
}
FONT_FILE = 'DejaVuSans.ttf'
# Debian's fonts-dejavu-core, then the copy matplotlib ships (the bench extras).
FONT_DIRS = ('/usr/share/fonts/truetype/dejavu',)


def font_path() -> str:
  """The DejaVu Sans file: FONT_DIRS, then matplotlib's; MissingFileError if neither has it."""
  dirs = list(FONT_DIRS)
  try:
    import matplotlib

    dirs.append(os.path.join(matplotlib.get_data_path(), 'fonts', 'ttf'))
  except ImportError:
    pass
  for d in dirs:
    if os.path.isfile(os.path.join(d, FONT_FILE)):
      return os.path.join(d, FONT_FILE)
  raise errors.MissingFileError(
    f'{FONT_FILE} not found in {dirs}; install fonts-dejavu-core (Debian) or matplotlib'
  )


@functools.cache
def _font(px: int) -> ImageFont.FreeTypeFont:
  return ImageFont.truetype(font_path(), px)


def _colours(rng: np.random.Generator, kind: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
  """(text RGB, background RGB) of one image under the style's `colours`."""
  if kind == 'plain':
    return PLAIN_TEXT, PLAIN_BACKGROUND
  while True:
    channels = 1 if kind == 'gray' else 3
    text, background = rng.integers(0, 256, channels), rng.integers(0, 256, channels)
    if abs(float(text.mean()) - float(background.mean())) >= MIN_CONTRAST:
      return tuple(int(text[i % channels]) for i in range(3)), tuple(
        int(background[i % channels]) for i in range(3)
      )


def render(
  word: str, rng: np.random.Generator, style: Style = STYLES['plain'], size: int = SIZE
) -> Image.Image:
  """`word` in `style` at a random position (and size, colours) on a size x size canvas.

  The font shrinks below the style's size when the word would not fit the width.
  """
  text, background = _colours(rng, style.colours)
  px = int(rng.integers(style.font_px[0], style.font_px[1] + 1))
  left, top, right, bottom = _font(px).getbbox(word)
  while right - left > size - 2 and px > 6:
    px -= 1
    left, top, right, bottom = _font(px).getbbox(word)
  x = int(rng.integers(0, max(1, size - (right - left)))) - left
  y = int(rng.integers(0, max(1, size - (bottom - top)))) - top
  img = Image.new('RGB', (size, size), background)
  ImageDraw.Draw(img).text((x, y), word, fill=text, font=_font(px))
  return img


def write(
  root: str, seed: int, n_train: int, n_val: int, style: str = 'plain', size: int = SIZE
) -> str:
  """Writes the data set in STYLES[style] into `root` (created); returns `root`."""
  if style not in STYLES:
    raise errors.ConfigError(f'unknown style {style!r}; valid: {sorted(STYLES)}')
  images = os.path.join(root, 'train_images')
  os.makedirs(images, exist_ok=True)
  rng = np.random.default_rng(seed)
  question_id = 0
  for split, n in (('train', n_train), ('val', n_val)):
    data = []
    for k in range(n):
      word = words.OCR_WORDS[int(rng.integers(len(words.OCR_WORDS)))]
      image_id = f'{split}_{k:05d}'
      path = os.path.join(images, f'{image_id}.jpg')
      render(word, rng, STYLES[style], size).save(path, quality=100, subsampling=0)
      data.append(
        {
          'image_id': image_id,
          'question': QUESTION,
          'question_id': question_id,
          'answers': [word] * 10,  # TextVQA has 10 human answers per question
        }
      )
      question_id += 1
    with open(os.path.join(root, f'TextVQA_0.5.1_{split}.json'), 'w') as f:
      json.dump({'dataset_name': 'textvqa', 'dataset_version': '0.5.1', 'data': data}, f)
  return root
