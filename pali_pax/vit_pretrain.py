"""The demo's stand-in for a public ViT checkpoint: a ViT pretrained on the scenes' labels.

PaLI starts from a ViT pretrained on image classification (JFT) and keeps it
frozen while the language side learns the mixture. No public checkpoint fits the
demo's 32 px scenes, so `pretrain` makes one the same way: a fresh ViT learns the
synthetic generator's own labels on training images drawn under another seed than
the demo's (`data_seed`). For a scene of shapes, the object count and each slot's
shape, colour and box; for an OCR image, the word. The heads read the flattened
tokens [B, N * D], so the tokens themselves must say what is where (as the encoder
reads them); one softmax per label, an L1 loss on the slot boxes (fractions of the
side). Half of each batch is scenes, half OCR images.

`pali-pax demo` writes the result as a big_vision .npz (`convert.export_vit`) and
converts it into its job's step-0 checkpoint (`convert.to_pax`): the path a user
takes with a real ViT checkpoint. Deterministic: the same seeds give the same
weights (TF's counter-based scene generator, jax's PRNG, no data-dependent order).
"""

from collections.abc import Iterator
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from praxis import base_layer, pax_fiddle
from tqdm import tqdm

from pali_pax.core import batch as batch_lib
from pali_pax.core import errors
from pali_pax.tasks import synthetic
from pali_pax.tasks import synthetic_words as words

MAX_OBJECTS = 2  # the demo's scenes
# head -> classes; a slot head has one more class: 'no object in this slot'
HEADS = {
  'count': MAX_OBJECTS,
  **{f'shape{k}': len(words.SHAPES) + 1 for k in range(MAX_OBJECTS)},
  **{f'colour{k}': len(words.COLOURS) + 1 for k in range(MAX_OBJECTS)},
  'word': len(words.OCR_WORDS),
}
WARMUP_STEPS = 100


def labels(raw: dict[str, np.ndarray], size: int) -> dict[str, np.ndarray]:
  """Raw synthetic examples (`synthetic.batch_fn`'s fields as numpy, leading [n]) -> uint8
  'image' [n, size, size, 3]; int [n] labels of every `HEADS` entry; 'box' float32
  [n, M, 4] (ymin, xmin, ymax, xmax as fractions of the side); 'valid' bool [n, M].

  OCR images carry scene labels of no objects, scenes word 0: `loss` weighs each head
  by the examples it applies to.
  """
  obj = raw['objects']  # [n, M, 7]: valid, colour, shape, ymin, xmin, ymax, xmax
  valid = obj[:, :, 0] > 0
  out = {'image': raw['image'], 'valid': valid, 'box': obj[:, :, 3:].astype(np.float32) / size}
  out['count'] = np.maximum(valid.sum(1) - 1, 0)
  for k in range(MAX_OBJECTS):
    out[f'shape{k}'] = np.where(valid[:, k], obj[:, k, 2], len(words.SHAPES))
    out[f'colour{k}'] = np.where(valid[:, k], obj[:, k, 1], len(words.COLOURS))
  out['word'] = np.maximum(raw['word'], 0)
  return out


def labelled_batches(
  task: str, first: int, count: int, n: int, size: int, seed: int, ocr_style: str = 'plain'
) -> Iterator[dict[str, np.ndarray]]:
  """Batches first..first+count-1 of `task`'s training examples ('caption': scenes, or
  'ocr' drawn in `ocr_style`) under `seed`, batch b holding examples b*n..b*n+n-1, as
  `labels`. Made by `synthetic.dataset` (the seqio sources' generator, a batch per
  tf.data call) ahead of the training step that reads them."""
  start, stop = first * n, (first + count) * n
  ds = synthetic.dataset(task, 'train', size, seed, MAX_OBJECTS, start, stop, ocr_style=ocr_style)
  ds = ds.map(lambda ex: {k: ex[k] for k in ('image', 'objects', 'word')})
  for raw in ds.batch(n).prefetch(2).as_numpy_iterator():
    yield labels(raw, size)


def mixed_batches(
  first: int, count: int, batch: int, size: int, seed: int, ocr_style: str = 'plain'
) -> Iterator[dict[str, Any]]:
  """Batches first..first+count-1 as device arrays: half scenes then half OCR images;
  'x' the scaled pixels [B, S, S, 3], 'is_ocr' / 'valid' as float32 weights."""
  half = batch // 2
  scenes, ocr = (
    labelled_batches(t, first, count, half, size, seed, ocr_style) for t in ('caption', 'ocr')
  )
  is_ocr = jnp.asarray(np.arange(2 * half) >= half, jnp.float32)
  for parts in zip(scenes, ocr, strict=True):
    raw = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    out = {k: jnp.asarray(v) for k, v in raw.items() if k not in ('image', 'valid')}
    out['x'] = jnp.asarray(batch_lib.scale_pixels(raw['image'].astype(np.float32)))
    out['valid'] = jnp.asarray(raw['valid'], jnp.float32)
    yield {**out, 'is_ocr': is_ocr}


def loss(logits: dict[str, jax.Array], boxes: jax.Array, b: dict[str, Any]) -> jax.Array:
  """Scalar: each head's mean cross-entropy over the examples it applies to, plus the
  L1 box error [B, M] summed over coordinates, mean over the scenes' valid slots."""
  scene = 1.0 - b['is_ocr']
  total = 0.0
  for name, lg in logits.items():
    xent = optax.softmax_cross_entropy_with_integer_labels(lg, b[name])
    weight = b['is_ocr'] if name == 'word' else scene
    total += jnp.sum(xent * weight) / jnp.maximum(jnp.sum(weight), 1.0)
  valid = b['valid'] * scene[:, None]
  l1 = jnp.abs(boxes - b['box']).sum(-1)
  return total + jnp.sum(l1 * valid) / jnp.maximum(jnp.sum(valid), 1.0)


class Pretrainer:
  """A fresh ViT of `vit_cfg` (a `fiddle_configs.vit.vit_config`, unsharded) with linear
  heads on its flattened tokens."""

  def __init__(self, vit_cfg: pax_fiddle.Config, seed: int, ocr_style: str = 'plain') -> None:
    self.vit_cfg, self.size, self.ocr_style = vit_cfg, vit_cfg.image_size, ocr_style
    self.vit = base_layer.instantiate(vit_cfg)
    x = jnp.zeros((1, self.size, self.size, 3))
    key = jax.random.PRNGKey(seed)
    key, sub = jax.random.split(key)
    self.params = {'vit': self.vit.init(sub, x)['params']}
    feats = int(np.prod(self.vit.apply({'params': self.params['vit']}, x).shape[1:]))
    for name, classes in {**HEADS, 'box': 4 * MAX_OBJECTS}.items():
      key, sub = jax.random.split(key)
      w = jax.random.normal(sub, (feats, classes)) / np.sqrt(feats)
      self.params[name] = {'w': w, 'b': jnp.zeros(classes)}

  def forward(self, p: Any, x: jax.Array) -> tuple[dict[str, jax.Array], jax.Array]:
    """x [B, S, S, 3] scaled pixels -> ({head: logits [B, classes]}, boxes [B, M, 4])."""
    h = self.vit.apply({'params': p['vit']}, x)
    h = h.reshape(h.shape[0], -1)
    logits = {name: h @ p[name]['w'] + p[name]['b'] for name in HEADS}
    boxes = jax.nn.sigmoid(h @ p['box']['w'] + p['box']['b'])
    return logits, boxes.reshape(-1, MAX_OBJECTS, 4)

  def train(
    self, steps: int, data_seed: int, batch: int = 64, lr: float = 3e-3, progress: bool = True
  ) -> None:
    """Adam at `lr`: a linear warm-up (WARMUP_STEPS, at most half the run), then a cosine
    decay to 0 at `steps`."""
    if steps < 1:
      raise errors.ConfigError(f'ViT pretraining needs steps >= 1, got {steps}')
    warmup = min(WARMUP_STEPS, steps // 2)
    opt = optax.adam(optax.warmup_cosine_decay_schedule(0.0, lr, warmup, steps))

    @jax.jit
    def step(p: Any, s: Any, b: dict[str, Any]) -> tuple[Any, Any, jax.Array]:
      value, grads = jax.value_and_grad(lambda p: loss(*self.forward(p, b['x']), b))(p)
      updates, s = opt.update(grads, s, p)
      return optax.apply_updates(p, updates), s, value

    state = opt.init(self.params)
    data = mixed_batches(1, steps, batch, self.size, data_seed, self.ocr_style)
    bar = tqdm(data, desc='ViT pretraining', total=steps, unit='step', disable=not progress)
    for i, b in enumerate(bar, 1):
      self.params, state, value = step(self.params, state, b)
      if i % 100 == 0:
        bar.set_postfix(loss=float(value))

  def accuracy(self, data_seed: int, n: int = 2000) -> dict[str, float]:
    """On n examples drawn under `data_seed`: each head's accuracy over the examples it
    applies to, and 'box_l1', the mean absolute box error (fraction of the side)."""
    b = next(mixed_batches(0, 1, n, self.size, data_seed, self.ocr_style))
    logits, boxes = jax.jit(self.forward)(self.params, b['x'])
    scene = np.asarray(b['is_ocr']) == 0
    out = {}
    for name, lg in logits.items():
      keep = ~scene if name == 'word' else scene
      hits = np.argmax(np.asarray(lg), -1) == np.asarray(b[name])
      out[name] = float(np.mean(hits[keep]))
    valid = (np.asarray(b['valid']) > 0) & scene[:, None]
    err = np.abs(np.asarray(boxes) - np.asarray(b['box'])).mean(-1)
    out['box_l1'] = float(np.mean(err[valid]))
    return out


def pretrain(
  vit_cfg: pax_fiddle.Config,
  steps: int,
  seed: int,
  data_seed: int,
  ocr_style: str = 'plain',
  progress: bool = True,
) -> tuple[Any, dict[str, float]]:
  """(the ViT's params, held-out accuracies: `Pretrainer.accuracy` under data_seed + 1)
  of a fresh ViT of `vit_cfg` (init from `seed`) trained `steps` steps of 64 examples
  drawn under `data_seed`, OCR words in `ocr_style`."""
  trainer = Pretrainer(vit_cfg, seed, ocr_style)
  trainer.train(steps, data_seed, progress=progress)
  return trainer.params['vit'], trainer.accuracy(data_seed + 1)
