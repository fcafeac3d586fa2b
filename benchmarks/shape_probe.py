"""Can the ViT tell the synthetic shapes apart? Probes of a job's tokens, and of a ViT trained alone.

    python -m benchmarks.shape_probe --job JOB_DIR [--step N]   # linear probe of the job's ViT
    python -m benchmarks.shape_probe --direct tiny/8 [--white] [--export NPZ]  # a fresh ViT on shapes

Scenes come from the synthetic generator at 32 px (`tasks.synthetic_scene`), kept
when they have 1 or 2 objects; the label is the shape (or colour) of the object in
the first slot, the one a caption names first.

- `--job`: the job's ViT tokens [N, D] (frozen, through `Predictor.image_features`),
  flattened and standardised, then a linear softmax classifier (Adam, full batch,
  a small L2 term) fitted on 30,000 scenes' draws and scored on 4,000 others. What
  the tokens say linearly, not what the rest of the model reads from them.
- `--direct`: a new ViT of that variant + mean over tokens + a linear head, trained
  on the 2-object scenes' shape alone (Adam 3e-3, batch 64): what the tower can learn
  when shape is all it is asked. `--white` draws every object white, which separates
  the colour-and-shape entanglement of the patch embedding from the shape itself.
  `--export NPZ` writes the trained ViT as a big_vision .npz, which
  `pali_pax.convert.to_pax.convert_to_pax(EXP, JOB, vit=NPZ)` turns into a job to
  start from (how docs/demo_recipe.md started the demo from it).

What it showed (docs/demo_recipe.md, "Why captions stop at ~35%"): trained alone, the
tiny ViT learns 2-object shapes (92% in 4000 steps with colours, 97% white); inside
the demo's 18,000 steps its tokens hold them only weakly (59% linearly).
"""

import argparse
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import tensorflow as tf
from praxis import base_layer

from benchmarks.timing import progress
from pali_pax.convert import export_vit
from pali_pax.core import batch as batch_lib
from pali_pax.fiddle_configs import vit as vit_configs
from pali_pax.tasks import synthetic_scene as scene
from pali_pax.tasks import synthetic_words as words

SIZE = 32
WHITE = words.COLOURS.index('white')


def scenes(n: int, stream: int, objects: int, white: bool = False) -> dict[str, np.ndarray]:
  """Of n draws of `stream`, those with `objects` objects: uint8 'image' [m, 32, 32, 3],
  int 'shape' / 'colour' [m] of slot 0."""
  sample, render = scene.shared_scene_fns(SIZE, len(words.SHAPES))
  drawn = sample(scene.example_keys(stream, tf.range(n, dtype=tf.int64)))
  keep = drawn['num_objects'].numpy() == objects
  kept = {k: v.numpy()[keep] for k, v in drawn.items()}
  if white:
    kept['colours'] = np.full_like(kept['colours'], WHITE)
  image = render({k: tf.constant(v) for k, v in kept.items()}).numpy()
  return {'image': image, 'shape': kept['shapes'][:, 0], 'colour': kept['colours'][:, 0]}


def fit_linear(x: np.ndarray, y: np.ndarray, classes: int, steps: int = 1500) -> Any:
  """A softmax classifier on x [n, F] (full-batch Adam 1e-2, L2 1e-4): params {'w', 'b'}."""
  p = {'w': jnp.zeros((x.shape[1], classes)), 'b': jnp.zeros(classes)}
  opt = optax.adam(1e-2)
  x, y = jnp.asarray(x), jnp.asarray(y)

  def loss(p: Any) -> jax.Array:
    xent = optax.softmax_cross_entropy_with_integer_labels(x @ p['w'] + p['b'], y).mean()
    return xent + 1e-4 * jnp.sum(p['w'] ** 2)

  @jax.jit
  def step(p: Any, s: Any) -> Any:
    updates, s = opt.update(jax.grad(loss)(p), s, p)
    return optax.apply_updates(p, updates), s

  state = opt.init(p)
  for _ in range(steps):
    p, state = step(p, state)
  return p


def probe_job(job_dir: str, step: int | None = None) -> list[tuple[int, str, float]]:
  """(objects, 'shape' / 'colour', held-out accuracy) of a linear probe of the job's tokens."""
  from pali_pax.inference import Predictor

  pred = Predictor.from_checkpoint(job_dir, step)

  def tokens(images: np.ndarray) -> np.ndarray:
    chunks = [pred.image_features(images[i : i + 256]) for i in range(0, len(images), 256)]
    return np.concatenate(chunks).reshape(len(images), -1)

  out = []
  for objects in (1, 2):
    train, test = scenes(30_000, 1, objects), scenes(4000, 2, objects)
    xtr, xte = tokens(train['image']), tokens(test['image'])
    mu, sd = xtr.mean(0), xtr.std(0) + 1e-6
    xtr, xte = (xtr - mu) / sd, (xte - mu) / sd
    for label, classes in (('shape', len(words.SHAPES)), ('colour', len(words.COLOURS))):
      p = fit_linear(xtr, train[label], classes)
      acc = float(
        np.mean(np.argmax(xte @ np.asarray(p['w']) + np.asarray(p['b']), -1) == test[label])
      )
      out.append((objects, label, acc))
      progress(f'{job_dir}: {objects} object(s), slot-0 {label}: linear probe {acc:.3f}')
  return out


def train_direct(variant: str, steps: int, white: bool) -> tuple[list[tuple[int, float]], Any]:
  """A fresh ViT trained on 2-object slot-0 shapes: ((step, held-out accuracy) five times
  over the run, the trained ViT's params)."""
  train, test = scenes(60_000, 1, 2, white), scenes(6000, 2, 2, white)
  norm = lambda im: jnp.asarray(batch_lib.scale_pixels(im.astype(np.float32)))  # noqa: E731
  vit = base_layer.instantiate(vit_configs.vit_config(variant, image_size=SIZE))
  params = {'vit': vit.init(jax.random.PRNGKey(0), norm(train['image'][:2]))['params']}
  params |= {'w': jnp.zeros((vit.width, len(words.SHAPES))), 'b': jnp.zeros(len(words.SHAPES))}

  def logits(p: Any, x: jax.Array) -> jax.Array:
    return vit.apply({'params': p['vit']}, x).mean(1) @ p['w'] + p['b']

  opt = optax.adam(3e-3)

  @jax.jit
  def step(p: Any, s: Any, x: jax.Array, y: jax.Array) -> Any:
    loss = lambda p: optax.softmax_cross_entropy_with_integer_labels(logits(p, x), y).mean()  # noqa: E731
    updates, s = opt.update(jax.grad(loss)(p), s, p)
    return optax.apply_updates(p, updates), s

  accuracy = jax.jit(lambda p, x, y: jnp.mean(jnp.argmax(logits(p, x), -1) == y))
  rng, state, out, t0 = np.random.default_rng(0), opt.init(params), [], time.time()
  for s in range(1, steps + 1):
    i = rng.integers(0, len(train['shape']), 64)
    params, state = step(params, state, norm(train['image'][i]), jnp.asarray(train['shape'][i]))
    if s % max(steps // 5, 1) == 0:
      acc = float(accuracy(params, norm(test['image']), jnp.asarray(test['shape'])))
      out.append((s, acc))
      progress(
        f'{variant} {"white" if white else "colours"}: step {s} accuracy {acc:.3f} ({time.time() - t0:.0f} s)'
      )
  return out, params['vit']


def main(argv: Any = None) -> None:
  p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  group = p.add_mutually_exclusive_group(required=True)
  group.add_argument('--job', help='a job dir: linear probe of its ViT tokens')
  group.add_argument('--direct', metavar='VARIANT', help="train a fresh ViT ('tiny/8') on shapes")
  p.add_argument('--step', type=int, default=None, help='--job: checkpoint step (default: latest)')
  p.add_argument('--steps', type=int, default=4000, help='--direct: train steps')
  p.add_argument('--white', action='store_true', help='--direct: every object white')
  p.add_argument('--export', metavar='NPZ', help='--direct: write the ViT as a big_vision .npz')
  a = p.parse_args(argv)
  if a.job:
    for objects, label, acc in probe_job(a.job, a.step):
      print(f'| {objects} | slot-0 {label} | {100 * acc:.1f}% |')
  else:
    curve, vit_params = train_direct(a.direct, a.steps, a.white)
    for s, acc in curve:
      print(f'| {a.direct} | {"white" if a.white else "colours"} | {s} | {100 * acc:.1f}% |')
    if a.export:
      cfg = vit_configs.vit_config(a.direct, image_size=SIZE)
      progress(f'wrote {export_vit.export_vit_big_vision(vit_params, cfg, a.export)}')


if __name__ == '__main__':
  main()
