"""benchmarks.shape_probe's scenes: the kept object counts, slot-0 labels, the white recolouring."""

import numpy as np

from benchmarks import shape_probe
from pali_pax.tasks import synthetic_words as words

BACKGROUND = np.array(words.BACKGROUND_RGB, np.uint8)


def object_pixels(image: np.ndarray) -> np.ndarray:
  return image[np.any(image != BACKGROUND, axis=-1)]


def test_scenes_keep_one_object_count_and_label_slot_zero():
  one, two = shape_probe.scenes(200, 3, 1), shape_probe.scenes(200, 3, 2)
  assert (
    0 < len(one['shape']) and 0 < len(two['shape']) and len(one['shape']) + len(two['shape']) <= 200
  )
  # One object: every non-background pixel has the labelled colour.
  for image, colour in zip(one['image'][:20], one['colour'][:20], strict=True):
    assert (object_pixels(image) == words.COLOUR_RGB[words.COLOURS[colour]]).all()
  # Two objects: two colours, one of them slot 0's.
  for image, colour in zip(two['image'][:20], two['colour'][:20], strict=True):
    colours = {tuple(p) for p in object_pixels(image)}
    assert len(colours) == 2 and words.COLOUR_RGB[words.COLOURS[colour]] in colours


def test_white_keeps_the_shapes_and_only_recolours():
  plain, white = shape_probe.scenes(200, 4, 2), shape_probe.scenes(200, 4, 2, white=True)
  np.testing.assert_array_equal(plain['shape'], white['shape'])
  assert (white['colour'] == words.COLOURS.index('white')).all()
  # The same pixels are covered, now all white.
  covered = lambda im: np.any(im != BACKGROUND, axis=-1)  # noqa: E731
  np.testing.assert_array_equal(covered(plain['image']), covered(white['image']))
  assert (object_pixels(white['image'][0]) == words.COLOUR_RGB['white']).all()
