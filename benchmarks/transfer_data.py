"""The LoRA-transfer data set (issue 22 item 5d): coloured shapes in quadrants, as JSONL.

`write(root, seed, n_train, n_val)` writes root/{train,val}.jsonl and root/imgs/*.png
in the format of docs/data_format.md (task 'vqa': scored by VQA accuracy and exact
match). Each 64x64 image holds one shape (circle, square or triangle, in one of the
five colours of the synthetic pretraining, drawn with PIL at a random size and
position inside one quadrant, on the pretraining's gray); the prompt is one the
pretraining never used and the answer a template it never produced:

    {"image": "imgs/train_0000.png", "task": "vqa", "prompt": "Name the object and its quadrant:",
     "targets": ["blue triangle three"]}

What transfers: telling the colours and shapes apart (the pretrained ViT and decoder
know them and their words). What is new: the prompt, the answer's form, and the
quadrant (one = top left, two = top right, three = bottom left, four = bottom right),
which no pretraining task asks for. Every word of the answers is a whole piece of the
shipped vocabulary that pretraining targets contain (colours, shapes, counting
numbers), so even a model whose output layer is frozen (LoRA) can write them.

Deterministic: the images and lines are a function of (seed, n_train, n_val); the
train and validation splits come from one generator, so they never share an image.
"""

import json
import os

import numpy as np
from PIL import Image, ImageDraw

from pali_pax.tasks import synthetic_words as words

PROMPT = 'Name the object and its quadrant:'
TASK = 'vqa'  # -> seqio task pali_jsonl_vqa (VQA accuracy, exact match)
QUADRANTS = ('one', 'two', 'three', 'four')  # top left, top right, bottom left, bottom right
SIZE = 64  # pixels; the tiny model reads 32
MIN_SIDE, MAX_SIDE = 16, 28  # shape size in pixels (a quadrant is 32)


def answer(colour: str, shape: str, quadrant: int) -> str:
  """The target of one image: '<colour> <shape> <quadrant word>'."""
  return f'{colour} {shape} {QUADRANTS[quadrant]}'


def draw(colour: str, shape: str, quadrant: int, rng: np.random.Generator) -> Image.Image:
  """One shape of `colour` inside `quadrant` (0..3), random side and offset."""
  img = Image.new('RGB', (SIZE, SIZE), words.BACKGROUND_RGB)
  pen = ImageDraw.Draw(img)
  half = SIZE // 2
  side = int(rng.integers(MIN_SIDE, MAX_SIDE + 1))
  x0 = (quadrant % 2) * half + int(rng.integers(0, half - side + 1))
  y0 = (quadrant // 2) * half + int(rng.integers(0, half - side + 1))
  box = (x0, y0, x0 + side - 1, y0 + side - 1)
  fill = words.COLOUR_RGB[colour]
  if shape == 'circle':
    pen.ellipse(box, fill=fill)
  elif shape == 'square':
    pen.rectangle(box, fill=fill)
  else:  # apex at the top middle, base along the bottom edge (as the pretraining draws it)
    pen.polygon(
      [(x0 + (side - 1) / 2, y0), (x0, y0 + side - 1), (x0 + side - 1, y0 + side - 1)], fill
    )
  return img


def _lines(root: str, split: str, n: int, rng: np.random.Generator) -> list[dict]:
  combos = [(c, s, q) for c in words.COLOURS for s in words.SHAPES for q in range(len(QUADRANTS))]
  # Every combination equally often (then shuffled): the split's answers are balanced.
  order = [combos[i % len(combos)] for i in rng.permutation(max(n, len(combos)))][:n]
  rows = []
  for k, (colour, shape, quadrant) in enumerate(order):
    name = f'imgs/{split}_{k:04d}.png'
    draw(colour, shape, quadrant, rng).save(os.path.join(root, name))
    rows.append(
      {
        'id': f'{split}_{k:04d}',
        'image': name,
        'task': TASK,
        'prompt': PROMPT,
        'targets': [answer(colour, shape, quadrant)],
      }
    )
  return rows


def write(root: str, seed: int, n_train: int, n_val: int) -> str:
  """Writes the data set into `root` (created); returns `root`."""
  os.makedirs(os.path.join(root, 'imgs'), exist_ok=True)
  rng = np.random.default_rng(seed)
  for split, n in (('train', n_train), ('val', n_val)):
    with open(os.path.join(root, f'{split}.jsonl'), 'w') as f:
      for row in _lines(root, split, n, rng):
        f.write(json.dumps(row) + '\n')
  return root
