"""Where the one-token call goes: ViT, projection, encoder, cross K/V, ours against the peer.

    python -m benchmarks.prefill [--spec small] [--repeats 5] [--threads 2]

The one-token call of greedy decoding is the prefill: the ViT over the image patches,
the projection into the mT5 width, the mT5 encoder over [image tokens, prompt], the
decoder's cross-attention keys/values of every layer, and one decoder step. Each side
runs cumulative stages, so a part is the difference of two stages:

  stage         ours (pali_pax, random weights)                  peer (HF torch)
  vit           PaliModel.image_features                         SiglipVisionModel
  +projection   ViT + fusion (projection, concat with prompt)    PeerPali.encoder_inputs
  +encoder      PaliModel.encode                                 + MT5 encoder
  one token     greedy decode of 1 token (serving.decode_fn)      generate(max_new_tokens=1)

Ours is timed compiled with XLA's defaults and as pali_pax compiles inference
(`pali_pax.core.xla_cpu`); `--try FLAG=VALUE` adds a column of those options plus one
XLA CPU flag (e.g. `--try xla_cpu_use_onednn=true`). Every function is timed round-robin in one process, best of
--repeats (wall seconds); torch uses --threads intra-op threads. The CPU model and load
average are printed.
"""

import argparse
import os
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from praxis import base_layer

from benchmarks import configs, machine, model_step, timing
from benchmarks.decode import eval_ctx, init_params
from pali_pax.core import xla_cpu
from pali_pax.serving import decode_fn

STAGES = ('vit', '+projection', '+encoder', 'one token')


def ours_stages(
  spec: configs.BenchSpec, options: dict[str, Any] | None
) -> dict[str, Callable[[], Any]]:
  """{stage: fn()} of our model on the spec's random batch, compiled with XLA `options`."""
  model = base_layer.instantiate(configs.model_config(spec))
  batch = jax.tree_util.tree_map(jnp.asarray, model_step.random_batch(spec))
  params = init_params(model, batch)

  def applied(method: Callable) -> Callable:
    def run(p: dict, b: Any) -> Any:
      with eval_ctx():
        return model.apply({'params': p}, b, method=method)

    return run

  def fused(mdl: Any, b: Any) -> Any:
    ids = b.encoder_input_tokens
    embs = mdl.mt5.embed(ids)
    pads = (ids == 0).astype(jnp.float32)
    return mdl.fusion(mdl.image_features(b.image), b.has_image, embs, pads)

  greedy = decode_fn.greedy_fn(model, 1)
  fns = {
    'vit': applied(lambda mdl, b: mdl.image_features(b.image)),
    '+projection': applied(fused),
    '+encoder': applied(lambda mdl, b: mdl.encode(b)),
    'one token': lambda p, b: greedy(p, b.image, b.has_image, b.encoder_input_tokens),
  }
  out = {}
  for stage, fn in fns.items():
    timing.progress(f'ours {spec.name} {stage} ({options}): compiling')
    compiled = jax.jit(fn, compiler_options=options).lower(params, batch).compile()
    out[stage] = lambda c=compiled: c(params, batch)
  return out


def peer_stages(spec: configs.BenchSpec, threads: int) -> dict[str, Callable[[], Any]]:
  """{stage: fn()} of the HF torch peer on the same random batch."""
  import torch

  from benchmarks import peer_torch

  torch.set_num_threads(threads)
  torch.manual_seed(0)
  model = peer_torch.PeerPali(spec).eval()
  batch = peer_torch.torch_batch(spec)
  images, ids = batch['images'], batch['input_ids']

  def encoder() -> Any:
    embs, mask = model.encoder_inputs(images, ids)
    return model.mt5.encoder(inputs_embeds=embs, attention_mask=mask).last_hidden_state

  def one_token() -> Any:
    embs, mask = model.encoder_inputs(images, ids)
    return model.mt5.generate(
      inputs_embeds=embs, attention_mask=mask, max_new_tokens=1, min_new_tokens=1,
      do_sample=False, num_beams=1, use_cache=True,
    )  # fmt: skip

  fns = {
    'vit': lambda: model.vit(pixel_values=images).last_hidden_state,
    '+projection': lambda: model.encoder_inputs(images, ids),
    '+encoder': encoder,
    'one token': one_token,
  }

  def no_grad(fn: Callable) -> Callable:
    def run() -> Any:
      with torch.inference_mode():
        return fn()

    return run

  return {k: no_grad(fn) for k, fn in fns.items()}


def parts(best: dict[str, float], side: str) -> dict[str, float]:
  """Stage times of `side` -> per-part seconds (differences of cumulative stages)."""
  t = [best[f'{side}:{s}'] for s in STAGES]
  names = ('vit', 'projection', 'encoder', 'cross K/V + 1 step')
  return {'total': t[-1], **{n: t[i] - (t[i - 1] if i else 0.0) for i, n in enumerate(names)}}


def main(argv: list[str] | None = None) -> None:
  p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  p.add_argument('--spec', default='small', choices=sorted(configs.SPECS))
  p.add_argument('--repeats', type=int, default=5)
  p.add_argument('--threads', type=int, default=2, help='torch intra-op threads')
  p.add_argument('--no-peer', action='store_true', help='ours only (no torch)')
  p.add_argument(
    '--try',
    dest='extra',
    action='append',
    default=[],
    metavar='FLAG=VALUE',
    help="also pali_pax's options plus this XLA flag (repeatable; one column each)",
  )
  a = p.parse_args(argv)
  info = machine.describe()
  print(f'CPU: {info["cpu_model"]}; load average at start: {info["load_avg_start"]}', flush=True)
  spec = configs.SPECS[a.spec]
  tuned = xla_cpu.inference_options() or {}
  sides: dict[str, dict[str, Any] | None] = {'xla default': None, 'pali_pax': tuned}
  for flag in a.extra:
    key, _, value = flag.partition('=')
    # XLA's option parser takes Python bools for bool flags, not 'true' / 'false'.
    typed = {'true': True, 'false': False}.get(value.lower(), value)
    sides[f'+{key}'] = {**tuned, key: typed}
  fns: dict[str, Callable[[], Any]] = {}
  for side, options in sides.items():
    fns.update({f'{side}:{k}': fn for k, fn in ours_stages(spec, options).items()})
  if not a.no_peer:
    fns.update({f'peer:{k}': fn for k, fn in peer_stages(spec, a.threads).items()})
  best = {k: t.lo for k, t in timing.interleave(fns, a.repeats, label='prefill ').items()}
  cols = [*sides, *([] if a.no_peer else ['peer'])]
  table = {c: parts(best, c) for c in cols}
  print(f'\n{spec.name} spec, batch {spec.batch}, {spec.image_size} px: seconds (best of '
        f'{a.repeats}, round-robin)\n')  # fmt: skip
  print('| part | ' + ' | '.join(cols) + ' |\n|---' + '|---' * len(cols) + '|')
  for part in table[cols[0]]:
    print(f'| {part} | ' + ' | '.join(f'{table[c][part]:.3f}' for c in cols) + ' |')
  if 'peer' in table:
    for c in sides:
      print(f'{c}: one-token call = {table[c]["total"] / table["peer"]["total"]:.2f}x the peer')
  print(f'load average at end: {os.getloadavg()}', flush=True)


if __name__ == '__main__':
  main()
