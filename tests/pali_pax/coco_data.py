"""Small COCO-captions-2014 datasets on disk: real JPEGs + the official annotation JSON.

    make_coco_dir(root, n_train=160, n_val=48)

writes root/train2014/COCO_train2014_<id>.jpg, root/val2014/..., and
root/annotations/captions_{train,val}2014.json with the official keys (info,
licenses, images[{id, file_name, width, height, ...}], annotations[{id, image_id,
caption}]). Each image is one coloured shape on a light background; its five
captions name the colour and the shape, so a tiny model can learn them.
"""

import json
import os

import numpy as np
from PIL import Image, ImageDraw

COLOURS = {
  'red': (220, 30, 30),
  'green': (30, 170, 40),
  'blue': (30, 60, 220),
  'yellow': (235, 210, 20),
}
SHAPES = ('square', 'circle')
TEMPLATES = (
  'a {c} {s}',
  'a {c} {s} on a white background',
  'a picture of a {c} {s}',
  'one {c} {s}',
  'the {s} is {c}',
)


def _image(colour: str, shape: str, rng: np.random.Generator) -> Image.Image:
  w, h = 64, 48
  img = Image.new('RGB', (w, h), (245, 245, 240))
  draw = ImageDraw.Draw(img)
  size = int(rng.integers(18, 30))
  x, y = int(rng.integers(0, w - size)), int(rng.integers(0, h - size))
  box = (x, y, x + size, y + size)
  (draw.rectangle if shape == 'square' else draw.ellipse)(box, fill=COLOURS[colour])
  return img


def _split(root: str, sub: str, n: int, first_id: int, rng: np.random.Generator) -> list[dict]:
  os.makedirs(os.path.join(root, f'{sub}2014'), exist_ok=True)
  images, annotations = [], []
  for k in range(n):
    image_id = first_id + k
    colour = list(COLOURS)[k % len(COLOURS)]
    shape = SHAPES[(k // len(COLOURS)) % len(SHAPES)]
    file_name = f'COCO_{sub}2014_{image_id:012d}.jpg'
    _image(colour, shape, rng).save(os.path.join(root, f'{sub}2014', file_name), quality=95)
    images.append(
      {
        'license': 1,
        'file_name': file_name,
        'coco_url': '',
        'height': 48,
        'width': 64,
        'date_captured': '2013-11-14 11:18:45',
        'flickr_url': '',
        'id': image_id,
      }
    )
    for t in TEMPLATES:
      annotations.append(
        {
          'image_id': image_id,
          'id': len(annotations) + 10 * first_id,
          'caption': t.format(c=colour, s=shape),
        }
      )
  data = {
    'info': {'description': 'generated COCO-format captions', 'version': '1.0', 'year': 2014},
    'images': images,
    'licenses': [{'url': '', 'id': 1, 'name': 'generated'}],
    'annotations': annotations,
  }
  os.makedirs(os.path.join(root, 'annotations'), exist_ok=True)
  with open(os.path.join(root, 'annotations', f'captions_{sub}2014.json'), 'w') as f:
    json.dump(data, f)
  return images


def make_coco_dir(root: str, n_train: int = 160, n_val: int = 48, seed: int = 0) -> str:
  """Writes the dataset under `root`; returns root."""
  rng = np.random.default_rng(seed)
  _split(root, 'train', n_train, 100_000, rng)
  _split(root, 'val', n_val, 500_000, rng)
  return str(root)
