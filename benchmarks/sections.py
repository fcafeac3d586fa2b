"""The benchmark sections: each builds what it times, measures side by side, frees it.

Every comparison (ours vs peer, a speed change vs its baseline, decoding
methods) is timed round-robin in one process (`timing.interleave`), so the
ratios hold on a machine whose load drifts.
"""

import gc
import os
from typing import Any

from benchmarks import configs, decode, matmul, ours
from benchmarks.timing import interleave, progress


def jax_threads() -> int:
  """Threads XLA's CPU client uses: one per core available to this process."""
  return len(os.sched_getaffinity(0))


def peer_available() -> bool:
  """True when torch and transformers import (the optional bench extra)."""
  try:
    import torch  # noqa: F401
    import transformers  # noqa: F401
  except ImportError:
    return False
  return True


def section_matmul(sizes: tuple[int, ...], repeats: int) -> list[dict[str, Any]]:
  return matmul.bench_matmul(sizes, repeats)


def section_train(
  specs: list[configs.BenchSpec],
  opts: configs.ModelOptions,
  repeats: int,
  peer: bool,
  sequential: tuple[str, ...] = (),
) -> list[dict[str, Any]]:
  """Ours (and the peer) per spec; one record per spec {spec, ours, peer, interleaved}.

  Specs named in `sequential` time ours, free it, then time the peer (both
  models' training state at once would not fit next to other work in memory);
  the others are timed round-robin.
  """
  out = []
  for spec in specs:
    progress(f'train {spec.name}: building ours [{opts.label()}]')
    ts = ours.build_train_step(spec, opts)
    together = spec.name not in sequential
    fns: dict[str, Any] = {'ours': ts.run}
    syncs: dict[str, Any] = {}
    t: dict[str, Any] = {}
    if not together:
      t.update(interleave(fns, repeats, 1, label=f'train {spec.name} '))
      rec = {'spec': spec.name, 'ours': ours.record(spec, opts, ts, t['ours'])}
      del ts, fns
      gc.collect()
      fns = {}
    if peer:
      from benchmarks import peer_torch

      progress(f'train {spec.name}: building the peer (torch, {jax_threads()} threads)')
      peer_step, peer_params = peer_torch.build_train(spec, jax_threads())
      fns['peer'] = peer_step
      syncs['peer'] = peer_torch.no_sync
    t.update(interleave(fns, repeats, 1, label=f'train {spec.name} ', syncs=syncs, settle=1))
    if together:
      rec = {'spec': spec.name, 'ours': ours.record(spec, opts, ts, t['ours'])}
      del ts
    if peer:
      rec['peer'] = peer_torch.record(spec, t['peer'], peer_params, jax_threads())
    rec['interleaved'] = together
    out.append(rec)
    del fns
    gc.collect()
  return out


def section_ablation(
  spec: configs.BenchSpec,
  baseline: configs.ModelOptions,
  variants: dict[str, configs.ModelOptions],
  repeats: int,
) -> list[dict[str, Any]]:
  """Each variant interleaved with the baseline: [{change, before, after}]."""
  progress(f'ablation {spec.name}: building the baseline [{baseline.label()}]')
  base = ours.build_train_step(spec, baseline)
  out = []
  for name, opts in variants.items():
    progress(f'ablation {spec.name}: building "{name}" [{opts.label()}]')
    try:
      var = ours.build_train_step(spec, opts)
    except Exception as e:  # noqa: BLE001  (report, go on with the others)
      progress(f'ablation {name}: failed to build: {e}')
      continue
    t = interleave({'before': base.run, 'after': var.run}, repeats, 1, label=f'{name}: ')
    out.append(
      {
        'change': name,
        'before': ours.record(spec, baseline, base, t['before']),
        'after': ours.record(spec, opts, var, t['after']),
      }
    )
    del var
    gc.collect()
  return out


def section_decode(
  spec: configs.BenchSpec,
  lengths: tuple[int, ...],
  repeats: int,
  opts: configs.ModelOptions,
  peer: bool,
  variants: dict[str, configs.ModelOptions] | None = None,
) -> list[dict[str, Any]]:
  """Ours cached / recompute and the peer's generate for n in lengths (+1), interleaved.

  `variants` adds cached decoding of other model options ({method: options})
  at 1 token and the longest length.
  """
  lengths = tuple(sorted({1, *lengths}))
  fns: dict[str, Any] = {}
  syncs: dict[str, Any] = {}
  for (method, n), fn in decode.ours_fns(spec, lengths, opts).items():
    fns[f'{method} n={n}'] = fn
  for name, vopts in (variants or {}).items():
    short = (1, lengths[-1])
    for (_, n), fn in decode.ours_fns(spec, short, vopts, ('cached',), prefix=name).items():
      fns[f'{name} n={n}'] = fn
  if peer:
    from benchmarks import peer_torch

    for n, fn in peer_torch.generate_fns(spec, lengths, jax_threads()).items():
      fns[f'peer_generate n={n}'] = fn
      syncs[f'peer_generate n={n}'] = peer_torch.no_sync
  t = interleave(fns, repeats, 1, label=f'decode {spec.name} ', syncs=syncs)
  out = []
  for key, timing in t.items():
    method, n = key.split(' n=')
    out.append({'method': method, 'steps': int(n), 'timing': timing.to_json()})
  return out
