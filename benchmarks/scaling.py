"""How cost grows with resolution: step time and memory at 224, 448, 588 px.

The small model with patch 14 (ViT-S/14 + mT5-small), so the encoder sees
256, 1024 and 1764 visual tokens (+ the prompt). Each point runs in its own
process: peak RSS (VmHWM) is that process's, measured after the steps;
`rss_before` is the process's RSS after imports and before building the
model. XLA's `memory_analysis()` of the compiled step is reported beside it.

    python -m benchmarks.scaling --image-size 448 --repeats 2   # one point
"""

import argparse
import dataclasses
from typing import Any

from benchmarks import configs, subproc
from benchmarks.timing import progress

RESOLUTIONS = (224, 448, 588)
PATCH_VIT = 'S/14'


def point_spec(image_size: int, batch: int) -> configs.BenchSpec:
  """The small spec at `image_size` with patch 14."""
  return configs.SPECS['small'].replace(
    name=f'small/14@{image_size}', vit=PATCH_VIT, image_size=image_size, batch=batch
  )


def run_point(image_size: int, batch: int, repeats: int, opts: configs.ModelOptions) -> dict:
  """Child side: one resolution; returns the train record plus memory figures."""
  import psutil

  from benchmarks import ours

  rss_before = psutil.Process().memory_info().rss
  rec = ours.bench_train(point_spec(image_size, batch), opts, repeats)
  rec['rss_before'] = rss_before
  rec['peak_rss'] = subproc.peak_rss_bytes()
  rec['image_size'] = image_size
  rec['n_visual'] = (image_size // 14) ** 2
  return rec


def bench_scaling(
  resolutions: tuple[int, ...], batch: int, repeats: int, opts: configs.ModelOptions
) -> list[dict[str, Any]]:
  """One subprocess per resolution; failed points are left out (and reported)."""
  out = []
  for res in resolutions:
    progress(f'scaling: {res} px (subprocess)')
    args = [
      '--image-size',
      str(res),
      '--batch',
      str(batch),
      '--repeats',
      str(repeats),
      '--options',
      _opts_arg(opts),
    ]
    rec = subproc.run_child('benchmarks.scaling', args)
    if rec is not None:
      out.append(rec)
  return out


def _opts_arg(opts: configs.ModelOptions) -> str:
  return ','.join(f'{k}={v}' for k, v in dataclasses.asdict(opts).items())


def parse_opts(text: str) -> configs.ModelOptions:
  """'vit_scan=True,mt5_scan=False,...' -> ModelOptions."""
  kw: dict[str, Any] = {}
  for item in filter(None, text.split(',')):
    k, v = item.split('=')
    kw[k] = v == 'True' if v in ('True', 'False') else v
  return configs.ModelOptions(**kw)


def main() -> None:
  p = argparse.ArgumentParser(description='one resolution point (child process)')
  p.add_argument('--image-size', type=int, required=True)
  p.add_argument('--batch', type=int, default=8)
  p.add_argument('--repeats', type=int, default=2)
  p.add_argument('--options', default='')
  a = p.parse_args()
  subproc.emit(run_point(a.image_size, a.batch, a.repeats, parse_opts(a.options)))


if __name__ == '__main__':
  main()
