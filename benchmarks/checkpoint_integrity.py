"""What checkpoint checksums cost: save and restore-verify overhead per GB.

Writes a step directory of `--gb` GB in `--files` incompressible files (zstd
chunks look like random bytes) to a temp dir, laid out as paxml's
(`state/<array>/<chunk>`, `metadata/metadata`), then times what pali_pax adds:

- save: hashing the files one process wrote and writing its manifest part
  (`integrity.hash_files` + `integrity.write_part`), next to the time the write
  itself took;
- restore-verify: `integrity.verify_share` with 1 process, and with the step
  saved as `--processes` parts and verified share by share (each share is what
  one host of a pod reads; the slowest share is the pod's wall time).

Prints seconds and seconds per GB, the CPU model and the load average. The files
are read right after being written, so from the page cache: the figures are the
hashing (CPU) cost; a cold read adds the disk's read time per GB.

    python -m benchmarks.checkpoint_integrity --gb 1 --files 64 --processes 4
"""

import argparse
import json
import os
import tempfile
import time

import numpy as np
from etils import epath

from benchmarks import machine
from pali_pax.checkpoint import integrity


def _write_step(root: epath.Path, gb: float, files: int, seed: int = 0) -> tuple[list[str], float]:
  """A paxml-shaped step dir of `gb` GB; (item-relative file names, seconds to write)."""
  rng = np.random.default_rng(seed)
  size = int(gb * 2**30 / files)
  (root / 'metadata').mkdir(parents=True)
  (root / 'metadata' / 'metadata').write_text(json.dumps({'version': 1}))
  names, start = [], time.perf_counter()
  for i in range(files):
    array = root / 'state' / f'mdl_vars.params.array_{i:04d}'
    array.mkdir(parents=True)
    (array / '.zarray').write_text(json.dumps({'shape': [size // 4], 'chunks': [size // 4]}))
    with open(array / '0', 'wb') as f:
      f.write(rng.bytes(size))
      f.flush()
      os.fsync(f.fileno())
    names += [f'{array.name}/.zarray', f'{array.name}/0']
  return names, time.perf_counter() - start


def _save_parts(state: epath.Path, names: list[str], processes: int) -> float:
  """Writes `processes` manifest parts (part p: every p-th array); seconds spent hashing."""
  start = time.perf_counter()
  for p in range(processes):
    mine = [n for i, n in enumerate(names) if (i // 2) % processes == p]
    integrity.write_part(state, p, processes, integrity.hash_files(state, mine))
  return time.perf_counter() - start


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--gb', type=float, default=0.5, help='size of the step (GB)')
  parser.add_argument('--files', type=int, default=32, help='number of data files (chunks)')
  parser.add_argument('--processes', type=int, default=4, help='processes of the split check')
  parser.add_argument('--dir', default=None, help='parent of the temp dir (default: $TMPDIR)')
  args = parser.parse_args()
  facts = machine.describe()
  with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
    step = epath.Path(tmp) / 'checkpoint_00000001'
    names, write_s = _write_step(step, args.gb, args.files)
    state = step / 'state'
    gb = sum((state / n).stat().length for n in names) / 2**30
    save_s = _save_parts(state, names, 1)
    start = time.perf_counter()
    one = integrity.verify_share(step, 0, 1)
    verify_s = time.perf_counter() - start
    assert not one.problems, one.problems
    for part in state.glob('pali_pax_checksums.*'):
      part.unlink()
    _save_parts(state, names, args.processes)
    shares = []
    for p in range(args.processes):
      start = time.perf_counter()
      v = integrity.verify_share(step, p, args.processes)
      shares.append(time.perf_counter() - start)
      assert not v.problems, v.problems
  print(f'cpu: {facts["cpu_model"]} ({facts["cpus_usable"]} usable cores)')
  print(f'load average at start: {facts["load_avg_start"]}, at end: {os.getloadavg()}')
  print(f'step: {gb:.3f} GB in {args.files} data files (page cache: warm)')
  print(f'write (for scale):       {write_s:7.2f} s  {write_s / gb:6.2f} s/GB')
  print(f'save: hash + part        {save_s:7.2f} s  {save_s / gb:6.2f} s/GB  (one process, all)')
  print(f'restore-verify, 1 proc   {verify_s:7.2f} s  {verify_s / gb:6.2f} s/GB')
  print(
    f'restore-verify, {args.processes} parts: slowest share {max(shares):.2f} s '
    f'({max(shares) / gb:.2f} s per GB of the step), shares {[round(s, 2) for s in shares]}'
  )


if __name__ == '__main__':
  main()
