"""Cold vs warm start-up with JAX's persistent compilation cache: `python -m benchmarks.startup`.

Four commands, each a fresh process, timed wall-clock from launch to exit:

  train    `pali-pax train --exp=PaliTinySynthetic --fdl.NUM_TRAIN_STEPS=1` into a new job
           dir: imports, input pipeline, compile, the first train step, one checkpoint
  predict  `pali-pax predict` that job dir on one image: imports, restore, compile, decode

each run twice against one new cache folder: cold (empty cache: everything compiles and
is written) then warm (the same programs load from the cache). The result goes to
docs/benchmarks.json under 'startup'; `--write-docs` also replaces (or inserts, before
the hand-written analysis) its section of docs/benchmarks.md, leaving the rest as is.
On a shared machine the absolute times drift with the load (recorded with them).
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
from typing import Any

import numpy as np
from PIL import Image

from benchmarks.run import ROOT, load, save
from benchmarks.timing import progress

EXPERIMENT = 'PaliTinySynthetic'
SECTION_HEAD = '## Start-up: persistent compilation cache'


def _timed(cmd: list[str], env: dict[str, str], timeout: float) -> float:
  t0 = time.perf_counter()
  proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
  seconds = time.perf_counter() - t0
  if proc.returncode != 0:
    raise RuntimeError(f'{" ".join(cmd)} exited {proc.returncode}:\n{proc.stderr[-3000:]}')
  return seconds


def measure(timeout: float = 1800) -> dict[str, Any]:
  """{'train': {'cold_s', 'warm_s'}, 'predict': {...}, 'load_avg': [...]}."""
  cli = [sys.executable, '-m', 'pali_pax.cli']
  work = tempfile.mkdtemp(prefix='pali_startup_')
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2', PALI_PAX_CACHE_DIR=os.path.join(work, 'cache'))
  image = os.path.join(work, 'image.png')
  Image.fromarray(np.full((32, 32, 3), (200, 30, 30), np.uint8)).save(image)
  out: dict[str, Any] = {'experiment': EXPERIMENT, 'load_avg_start': os.getloadavg()}
  for label in ('cold', 'warm'):
    job = os.path.join(work, f'job_{label}')
    train = [
      *cli,
      'train',
      f'--exp={EXPERIMENT}',
      '--fdl.NUM_TRAIN_STEPS=1',
      '--fdl.CHECKPOINT_EVERY=1',
      f'--job_log_dir={job}',
      '--mode=train',
    ]
    progress(f'startup: train ({label} cache)')
    out.setdefault('train', {})[f'{label}_s'] = _timed(train, env, timeout)
    predict = [*cli, 'predict', job, '--image', image, '--prompt', 'Generate caption in EN:']
    progress(f'startup: predict ({label} cache)')
    out.setdefault('predict', {})[f'{label}_s'] = _timed(predict, env, timeout)
  out['load_avg_end'] = os.getloadavg()
  return out


def startup_md(rec: dict[str, Any]) -> str:
  """The docs section."""
  rows = [
    ('`pali-pax train`, 1 step (first train step + checkpoint)', rec['train']),
    ('`pali-pax predict`, one image (restore + first prediction)', rec['predict']),
  ]
  lines = [
    f'{SECTION_HEAD} ({rec["experiment"]})',
    '',
    'Wall-clock time of a fresh process from launch to exit, `python -m benchmarks.startup`. '
    'Cold: empty cache (every program compiles and is written to it); warm: the same '
    'command again (new job dir, same cache). The cache is on by default '
    '(`~/.cache/pali_pax/jax`, `$PALI_PAX_CACHE_DIR`; `--no_compilation_cache` turns it off). '
    f'**Shared, loaded machine**: load average {rec["load_avg_start"][0]:.1f} at the start, '
    f'{rec["load_avg_end"][0]:.1f} at the end (2 cores), so the times are slower than on an '
    'idle machine and the warm/cold ratio is the figure to read.',
    '',
    '| command | cold | warm | warm / cold |',
    '|---|---|---|---|',
  ]
  for label, t in rows:
    lines.append(
      f'| {label} | {t["cold_s"]:.0f} s | {t["warm_s"]:.0f} s | {t["warm_s"] / t["cold_s"]:.2f} |'
    )
  return '\n'.join(lines) + '\n'


def main(argv: list[str] | None = None) -> int:
  p = argparse.ArgumentParser(prog='python -m benchmarks.startup', description=__doc__)
  p.add_argument('--json', default=os.path.join(ROOT, 'docs', 'benchmarks.json'))
  p.add_argument('--write-docs', action='store_true')
  a = p.parse_args(argv)
  results = load(a.json)
  results['startup'] = measure()
  save(a.json, results)
  print(startup_md(results['startup']))
  if a.write_docs:
    path = os.path.join(ROOT, 'docs', 'benchmarks.md')
    with open(path) as f:
      text = f.read()
    with open(path, 'w') as f:
      f.write(replace_section(text, startup_md(results['startup'])))
    print(f'wrote {path}')
  return 0


def replace_section(doc: str, section: str) -> str:
  """`doc` with its '## Start-up' section replaced by `section` (inserted before the
  '## Analysis' heading, or appended, when there is none)."""
  lines = doc.splitlines(keepends=True)
  heads = [i for i, line in enumerate(lines) if line.startswith('## ')]
  start = next((i for i in heads if lines[i].startswith(SECTION_HEAD)), None)
  if start is None:
    at = next((i for i in heads if lines[i].startswith('## Analysis')), len(lines))
    return ''.join(lines[:at]) + section + '\n' + ''.join(lines[at:])
  end = next((i for i in heads if i > start), len(lines))
  return ''.join(lines[:start]) + section + '\n' + ''.join(lines[end:])


if __name__ == '__main__':
  sys.exit(main())
