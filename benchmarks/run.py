"""Benchmark command: `python -m benchmarks.run [--sections ...] [--write-docs]`.

Sections (default: all, in this order):
  matmul    jnp matmul rate, float32 and bfloat16 (the machine's limit)
  train     our paxml train step vs the torch/HF peer, per spec (small, base)
  ablation  each speed option of ours against the library default (small)
  profile   where our small train step's time goes (jax profiler)
  decode    greedy decoding: ours cached / recomputing vs the peer's generate
  scaling   small model at 224/448/588 px, one process per point (time, memory),
            mT5 scanned (configs.LEAN) and, at 224/448, the library defaults
  memory    PaLI-17B / 3B train step compiled abstractly on emulated devices

Results are merged into a JSON file (default docs/benchmarks.json): sections not
run keep their stored results, so `--sections decode --write-docs` refreshes one
table. Progress goes to stderr; a summary is printed at the end.
"""

import argparse
import json
import os
import sys
from typing import Any

SECTIONS = ('matmul', 'train', 'ablation', 'profile', 'decode', 'scaling', 'memory')
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _ints(text: str) -> tuple[int, ...]:
  return tuple(int(x) for x in text.split(',') if x)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
  p = argparse.ArgumentParser(
    prog='python -m benchmarks.run',
    description=__doc__.split('\n')[0],
    formatter_class=argparse.RawDescriptionHelpFormatter,
    epilog=__doc__.split('\n', 2)[2],
  )
  p.add_argument('--sections', default=','.join(SECTIONS), help='comma list of sections')
  p.add_argument('--specs', default='small,base', help='train specs (benchmarks.configs.SPECS)')
  p.add_argument('--repeats', type=int, default=5, help='timed train steps per measurement')
  p.add_argument(
    '--sequential-specs',
    default='base',
    help='specs whose ours and peer are timed one after the other (memory), not interleaved',
  )
  p.add_argument('--ablation-repeats', type=int, default=4)
  p.add_argument('--decode-repeats', type=int, default=3)
  p.add_argument('--decode-lengths', default='16,64')
  p.add_argument('--scaling-repeats', type=int, default=2)
  p.add_argument('--scaling-batch', type=int, default=8)
  p.add_argument('--resolutions', default='224,448,588', help='points with configs.LEAN')
  p.add_argument(
    '--resolutions-default', default='224,448', help='points with the library defaults too'
  )
  p.add_argument('--matmul-sizes', default='2048,4096')
  p.add_argument('--matmul-repeats', type=int, default=5)
  p.add_argument('--memory-devices', type=int, default=8)
  p.add_argument(
    '--memory-points',
    # Every point docs/pods.md reads, the residual-split pair included.
    default='17b:224,17b:588,17b:224:fsdp@8,17b:224:fsdp@16,17b:588:fsdp@8,17b:588:fsdp@16,'
    '17b:588:fsdp:res@8,17b:588:fsdp:res@16,3b:224,3b:588',
    help='SIZE:PIXELS[:fsdp][@DEVICES] (default devices: --memory-devices)',
  )
  p.add_argument('--memory-timeout', type=float, default=1800)
  p.add_argument('--no-peer', action='store_true', help='skip the torch peer')
  p.add_argument(
    '--options',
    default='',
    help="our model options instead of configs.OURS, e.g. 'vit_scan=False,mt5_scan=False'",
  )
  p.add_argument('--json', default=os.path.join(ROOT, 'docs', 'benchmarks.json'))
  p.add_argument('--write-docs', action='store_true', help='write docs/benchmarks.md + PNG')
  p.add_argument('--docs-only', action='store_true', help='only rewrite the docs from --json')
  p.add_argument('--docs-dir', default=os.path.join(ROOT, 'docs'))
  a = p.parse_args(argv)
  unknown = set(a.sections.split(',')) - set(SECTIONS)
  if unknown:
    p.error(f'unknown sections {sorted(unknown)}; valid: {", ".join(SECTIONS)}')
  return a


def load(path: str) -> dict[str, Any]:
  if os.path.exists(path):
    with open(path) as f:
      return json.load(f)
  return {}


def save(path: str, results: dict[str, Any]) -> None:
  os.makedirs(os.path.dirname(path) or '.', exist_ok=True)
  tmp = path + '.tmp'
  with open(tmp, 'w') as f:
    json.dump(results, f, indent=1, default=str)
  os.replace(tmp, path)


def run_sections(a: argparse.Namespace, results: dict[str, Any]) -> None:
  """Runs the selected sections, saving the JSON after each one."""
  from benchmarks import configs, machine, scaling, sections
  from benchmarks.timing import progress

  want = a.sections.split(',')
  peer = not a.no_peer and sections.peer_available()
  if not a.no_peer and not peer:
    progress(
      'torch/transformers not installed: the peer is skipped (pip install -r '
      'requirements/bench-lock.txt)'
    )
  # Runs logged before runs named their CPU ran on the machine recorded then.
  previous = results.get('machine', {})
  for old in results.get('runs', []):
    old.setdefault('cpu_model', previous.get('cpu_model'))
    old.setdefault('isa', previous.get('isa', []))
  results['machine'] = machine.describe()
  run_log = {
    'date': results['machine']['date'],
    'sections': [x for x in SECTIONS if x in want],
    'cpu_model': results['machine']['cpu_model'],
    'isa': results['machine']['isa'],
    'load_avg_start': results['machine']['load_avg_start'],
  }
  results.setdefault('runs', []).append(run_log)
  specs = [configs.SPECS[s] for s in a.specs.split(',') if s]
  best = scaling.parse_opts(a.options) if a.options else configs.OURS
  for name in SECTIONS:
    if name not in want:
      continue
    progress(f'=== section {name} ===')
    if name == 'matmul':
      results[name] = sections.section_matmul(_ints(a.matmul_sizes), a.matmul_repeats)
    elif name == 'train':
      seq = tuple(x for x in a.sequential_specs.split(',') if x)
      results[name] = sections.section_train(specs, best, a.repeats, peer, seq)
    elif name == 'ablation':
      results[name] = sections.section_ablation(
        configs.SPECS['small'], configs.LIBRARY_DEFAULT, configs.VARIANTS, a.ablation_repeats
      )
    elif name == 'profile':
      from benchmarks import profile

      results[name] = profile.profile_step(configs.SPECS['small'], best, 2)
    elif name == 'decode':
      results[name] = sections.section_decode(
        configs.SPECS['small'],
        _ints(a.decode_lengths),
        a.decode_repeats,
        best,
        peer,
        configs.DECODE_VARIANTS,
      )
    elif name == 'scaling':
      lean = scaling.parse_opts(a.options) if a.options else configs.LEAN
      results[name] = scaling.bench_scaling(
        _ints(a.resolutions), a.scaling_batch, a.scaling_repeats, lean
      ) + scaling.bench_scaling(
        _ints(a.resolutions_default), a.scaling_batch, a.scaling_repeats, configs.LIBRARY_DEFAULT
      )
    elif name == 'memory':
      from benchmarks import memory_plan

      results['memory_plan'] = memory_plan.bench_memory_plan(
        a.memory_points.split(','), a.memory_devices, a.memory_timeout
      )
    results['machine']['load_avg_end'] = run_log['load_avg_end'] = os.getloadavg()
    save(a.json, results)


def main(argv: list[str] | None = None) -> int:
  a = parse_args(argv)
  results = load(a.json)
  if not a.docs_only:
    run_sections(a, results)
  if a.write_docs or a.docs_only:
    from benchmarks import report

    print(f'wrote {report.write_docs(results, a.docs_dir)}')
  from benchmarks import summary

  print(summary.text(results))
  return 0


if __name__ == '__main__':
  sys.exit(main())
