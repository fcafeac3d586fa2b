"""Seeded, bounded fuzz of the Predictor (shared parts: tests/fuzzing.py).

Predictor   120 malformed calls (images, ids, masks, prompts, decoding arguments)
"""

import numpy as np
import pytest

from tests import fuzzing


@pytest.fixture(scope='module')
def predictor(tiny_predictor):
  return tiny_predictor


def _bad_images(rng, b):
  good = rng.uniform(-1, 1, (b, 32, 32, 3)).astype(np.float32)
  kind = rng.integers(10)
  if kind in (0, 1):
    good[tuple(rng.integers(s) for s in good.shape)] = [np.nan, np.inf][kind]
    return good
  return [
    np.zeros((0, 32, 32, 3), np.float32),
    good[0],
    good[..., :2],
    good[:, :31],
    good.astype(bool),
    good.astype(np.int16),
    good * 3,
    [[[[0.0] * 3]], [[[0.0] * 2]]],
  ][kind - 2]


def _bad_ids(rng, b, vocab_size, decoder=False):
  # All-zero and long rows are malformed prompts only (decoder ids start with 0, any length).
  kinds = [0, 1, 2, 3, 4, 5, 6, 8] if decoder else list(range(10))
  kind = kinds[rng.integers(len(kinds))]
  return [
    rng.uniform(0, 50, (b, 4)),
    np.full((b, 4), np.nan),
    np.zeros((0, 4), np.int32),
    np.zeros((b, 0), np.int32),
    np.full((b, 4), -1 - rng.integers(100)),
    np.full((b, 4), vocab_size + rng.integers(100)),
    np.arange(4),
    np.zeros((b, 4), np.int32),
    np.full((b, 4), 'x'),
    np.full((b, 700), 7),
  ][kind]


def _bad_mask(rng, b):
  return [np.ones((b, 3)), np.full((b, 4), 2), np.full((b, 4), np.nan), np.full((b, 4), 'a')][
    rng.integers(4)
  ]


def _bad_decoding(rng):
  name = ['beam_size', 'max_decode_steps'][rng.integers(2)]
  return name, [0, -2, 2.5, True, '3', None][rng.integers(6)]


def _bad_prompts(rng, b):
  kind = rng.integers(8)
  return [
    'Answer in en: what?',
    [],
    [''] * b,
    [None] * b,
    [b'bytes'] * b,
    ['Generate caption in xx:'] * b,
    ['red ' * 1000] * b,
    ['Answer in en: a?'] * (b + 1),
  ][kind]


def _predictor_case(rng, p):
  """(callable, names a failure must mention) for one malformed call."""
  b = int(rng.integers(1, 3))
  images = rng.uniform(-1, 1, (b, 32, 32, 3)).astype(np.float32)
  ids = np.tile(np.array([[5, 6, 7, 1]]), (b, 1))
  prompts_ok = ['Answer in en: colour?'] * b
  method = ['image_features', 'generate_ids', 'text_logits', 'generate', 'score'][rng.integers(5)]
  if method == 'image_features':
    bad = _bad_images(rng, b)
    return lambda: p.image_features(bad), ['images']
  if method == 'generate_ids':
    what = ['images', 'input_ids', 'input_mask', 'decoding'][rng.integers(4)]
    kw = {'images': images}
    if what == 'images':
      kw['images'] = _bad_images(rng, b)
    elif what == 'input_ids':
      ids = _bad_ids(rng, b, p.vocab_size)
    elif what == 'input_mask':
      kw['input_mask'] = _bad_mask(rng, b)
    else:
      name, value = _bad_decoding(rng)
      kw[name] = value
      what = name
    return lambda: p.generate_ids(ids, **kw), [what, 'input_ids', 'prompt']
  if method == 'text_logits':
    what = ['input_ids', 'decoder ids', 'images'][rng.integers(3)]
    dec = np.zeros((b, 3), np.int32)
    if what == 'input_ids':
      ids = _bad_ids(rng, b, p.vocab_size)
    elif what == 'decoder ids':
      dec = _bad_ids(rng, b, p.vocab_size, decoder=True)
    else:
      images = _bad_images(rng, b)
    return lambda: p.text_logits(ids, dec, images=images), [what, 'prompt']
  what = ['images', 'prompts', 'decoding', 'targets'][rng.integers(4)]
  prompts = _bad_prompts(rng, b) if what == 'prompts' else prompts_ok
  images = _bad_images(rng, b) if what == 'images' else images
  if method == 'generate':
    kw = {'max_decode_steps': 2}
    if what in ('decoding', 'targets'):
      name, value = _bad_decoding(rng)
      kw[name] = value
      what = name
    return lambda: p.generate(images, prompts, **kw), [what, 'prompt', 'images']
  targets = ['x'] * b
  if what in ('decoding', 'targets'):
    targets = [[], 'x', [3] * b, ['x'] * (b + 1)][rng.integers(4)]
    what = 'targets'
  return lambda: p.score(images, prompts, targets), [what, 'prompt', 'images']


def test_fuzz_predictor(predictor):
  rng = np.random.default_rng(fuzzing.SEED + 2)
  failures = []
  for i in range(120):
    call, names = _predictor_case(rng, predictor)
    try:
      call()
      failures.append(f'predictor[{i}]: a malformed call ran')
    except Exception as e:  # noqa: BLE001
      fuzzing.fails(failures, f'predictor[{i}]', e, names)
  assert not failures, '\n'.join(failures)
