"""Cold vs warm start-up with JAX's persistent compilation cache: `python -m benchmarks.startup`.

Two commands, each a fresh process, timed wall-clock from launch:

  train    `pali-pax train --exp=PaliTinySynthetic --fdl.NUM_TRAIN_STEPS=1` into a new job
           dir: imports, input pipeline, compile, the first train step, one checkpoint.
           `first_step_s`: until the checkpoint paxml writes after step 1 is complete
           (its final folder appears; the step-0 one is written before the first step
           runs, while the input may still be building); `s`: until the process exits.
  predict  `pali-pax predict` that job dir on one image: imports, restore, compile, decode

each run twice against one new cache folder: cold (empty cache: everything compiles and
is written) then warm (the same programs load from the cache).

`--baseline-rev REV` measures the code of git revision REV (a `git archive` of it, put
first on PYTHONPATH) beside the working tree (or beside `--rev REV2`), in the same run and round-robin (each
command: baseline, then current), each with its own cache: the before/after of a
change on the same machine under the same load. The load average is recorded with
every figure.

The result goes to docs/benchmarks.json under 'startup'; `--write-docs` also replaces
(or inserts, before the hand-written analysis) its section of docs/benchmarks.md.
"""

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from typing import Any

import numpy as np
from PIL import Image

from benchmarks.run import ROOT, load, save
from benchmarks.timing import progress
from pali_pax.checkpoint import layout

EXPERIMENT = 'PaliTinySynthetic'
SECTION_HEAD = '## Start-up: persistent compilation cache'
# Package dirs the installed (editable) pali_pax maps into pali_pax/ (pyproject.toml).
_MAPPED = {'layers': 'layers', 'tasks': 'tasks', 'fiddle_configs': 'fiddle_configs'}


def _timed(
  cmd: list[str], env: dict[str, str], cwd: str, timeout: float, marker: str | None = None
) -> tuple[float, float | None, str]:
  """(seconds to exit, seconds until path `marker` exists or None, stderr)."""
  # Output to files, not pipes: a full pipe would stall the child while we poll.
  with tempfile.TemporaryFile('w+') as out, tempfile.TemporaryFile('w+') as err:
    t0 = time.perf_counter()
    # cwd outside the repository: `python -m` puts it first on sys.path, before PYTHONPATH.
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=out, stderr=err, text=True)
    seen = None
    while proc.poll() is None:
      if time.perf_counter() - t0 > timeout:
        proc.kill()
        raise TimeoutError(f'{" ".join(cmd)} ran past {timeout} s')
      if marker and seen is None and os.path.exists(marker):
        seen = time.perf_counter() - t0
      time.sleep(0.1)
    seconds = time.perf_counter() - t0
    err.seek(0)
    stderr = err.read()
  if proc.returncode != 0:
    raise RuntimeError(f'{" ".join(cmd)} exited {proc.returncode}:\n{stderr[-3000:]}')
  return seconds, seen, stderr


def baseline_tree(rev: str, work: str) -> str:
  """A source tree of git revision `rev` importable as pali_pax from PYTHONPATH."""
  tree = os.path.join(work, f'tree_{rev.replace("/", "_")}')
  os.makedirs(tree)
  archive = subprocess.run(['git', 'archive', rev], cwd=ROOT, capture_output=True, check=True)
  subprocess.run(['tar', '-x', '-C', tree], input=archive.stdout, check=True)
  for name, folder in _MAPPED.items():
    os.symlink(os.path.join(tree, folder), os.path.join(tree, 'pali_pax', name))
  return tree


def _cpu() -> dict[str, Any]:
  model, flags = platform.processor(), []
  try:
    with open('/proc/cpuinfo') as f:
      for line in f:
        if line.startswith('model name') and not model:
          model = line.split(':', 1)[1].strip()
        if line.startswith('flags'):
          flags = line.split(':', 1)[1].split()
          break
  except OSError:
    pass
  isa = [f for f in ('avx2', 'avx512f', 'avx512_bf16', 'amx_bf16') if f in flags]
  return {'model': model, 'isa': isa, 'cores': os.cpu_count()}


def measure(
  baseline_rev: str | None = None, rev: str | None = None, timeout: float = 1800
) -> dict[str, Any]:
  """{'cpu', 'runs': {label: {'train': {...}, 'predict': {...}}}, 'load_avg_*'}."""
  work = tempfile.mkdtemp(prefix='pali_startup_')
  # The working tree, or `rev` when given (unaffected by edits while the benchmark runs).
  trees: dict[str, str | None] = {rev or 'current': baseline_tree(rev, work) if rev else None}
  if baseline_rev:
    trees = {f'baseline ({baseline_rev})': baseline_tree(baseline_rev, work), **trees}
  image = os.path.join(work, 'image.png')
  Image.fromarray(np.full((32, 32, 3), (200, 30, 30), np.uint8)).save(image)
  out: dict[str, Any] = {
    'experiment': EXPERIMENT,
    'cpu': _cpu(),
    'load_avg_start': os.getloadavg(),
    'runs': {label: {'train': {}, 'predict': {}} for label in trees},
  }
  for phase in ('cold', 'warm'):
    for command in ('train', 'predict'):
      for i, (label, tree) in enumerate(trees.items()):
        env = dict(
          os.environ,
          TF_CPP_MIN_LOG_LEVEL='2',
          PALI_PAX_CACHE_DIR=os.path.join(work, f'cache_{i}'),
        )
        if tree:
          env['PYTHONPATH'] = tree
        cli = [sys.executable, '-m', 'pali_pax.cli']
        job = os.path.join(work, f'job_{i}_{phase}')
        marker = None
        if command == 'train':
          cmd = [
            *cli,
            'train',
            f'--exp={EXPERIMENT}',
            '--fdl.NUM_TRAIN_STEPS=1',
            '--fdl.CHECKPOINT_EVERY=1',
            f'--job_log_dir={job}',
            '--mode=train',
          ]
          marker = os.fspath(layout.step_path(layout.checkpoint_dir(job), 1))
        else:
          cmd = [*cli, 'predict', job, '--image', image, '--prompt', 'Generate caption in EN:']
        progress(f'startup: {label} {command} ({phase} cache)')
        load_before = os.getloadavg()[0]
        try:
          seconds, first, err = _timed(cmd, env, work, timeout, marker)
        except (RuntimeError, TimeoutError) as e:  # recorded; the other runs go on
          out['runs'][label][command][f'{phase}_error'] = str(e)[-2000:]
          progress(f'startup: {label} {command} ({phase}) failed: {str(e)[-300:]}')
          continue
        rec = {
          f'{phase}_s': seconds,
          f'{phase}_load_avg': [load_before, os.getloadavg()[0]],
          f'{phase}_aot_loader_errors': err.count('cpu_aot_loader'),
        }
        if first is not None:
          rec[f'{phase}_first_step_s'] = first
        out['runs'][label][command].update(rec)
  out['load_avg_end'] = os.getloadavg()
  return out


def startup_md(rec: dict[str, Any]) -> str:
  """The docs section."""
  cpu = rec.get('cpu', {})
  lines = [
    f'{SECTION_HEAD} ({rec["experiment"]})',
    '',
    'Wall-clock time of a fresh process from launch, `python -m benchmarks.startup'
    + (' --baseline-rev REV`' if len(rec['runs']) > 1 else '`')
    + f', on {cpu.get("model", "?")} ({", ".join(cpu.get("isa", []))}; {cpu.get("cores")} '
    'cores). Cold: empty cache (every program compiles and is written to it); warm: the '
    'same command again (new job dir, same cache). Train: to the end of the first step (the '
    'checkpoint written after step 1 is complete) / to exit. The cache is on by default '
    '(`~/.cache/pali_pax/jax/<machine>-<ISA key>`, `$PALI_PAX_CACHE_DIR`; '
    '`--no_compilation_cache` turns it off). The load average (1 min, 2 cores) before '
    'each run is given with it: on a shared machine the absolute times drift with it.',
    '',
    '| code | command | cold | warm | load (warm) | loader errors (warm) |',
    '|---|---|---|---|---|---|',
  ]
  for label, runs in rec['runs'].items():
    for command, t in runs.items():
      if 'warm_s' not in t or 'cold_s' not in t:
        lines.append(f'| {label} | `pali-pax {command}` | failed | failed | | |')
        continue
      cold = f'{t["cold_s"]:.0f} s'
      warm = f'{t["warm_s"]:.0f} s'
      if 'warm_first_step_s' in t:
        cold = f'{t["cold_first_step_s"]:.0f} / {cold}'
        warm = f'{t["warm_first_step_s"]:.0f} / {warm}'
      lines.append(
        f'| {label} | `pali-pax {command}` | {cold} | {warm} | '
        f'{t["warm_load_avg"][0]:.1f} | {t["warm_aot_loader_errors"]} |'
      )
  return '\n'.join(lines) + '\n'


def main(argv: list[str] | None = None) -> int:
  p = argparse.ArgumentParser(prog='python -m benchmarks.startup', description=__doc__)
  p.add_argument('--json', default=os.path.join(ROOT, 'docs', 'benchmarks.json'))
  p.add_argument('--baseline-rev', help='also measure this git revision, side by side')
  p.add_argument('--rev', help='measure this git revision instead of the working tree')
  p.add_argument('--write-docs', action='store_true')
  a = p.parse_args(argv)
  results = load(a.json)
  results['startup'] = measure(a.baseline_rev, a.rev)
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
