"""Where the train step's time goes: jax profiler trace + XLA op attribution.

Runs a few steps under `jax.profiler.trace`, reads the XPlane protobuf
(TensorFlow's `xplane_pb2`, installed with the Pax stack), sums the time of
every XLA CPU thunk (one event per HLO op or fusion on the XLA Eigen worker
threads) and attributes it, through the op's `op_name` metadata in the
compiled HLO text, to a component (vit / fusion / encoder / decoder / lm head
and loss / optimizer) and a kind (matmul = dot/convolution, or other:
elementwise fusions, transposes, reductions, copies).

    python -m benchmarks.profile --spec small --steps 2
    python -m benchmarks.profile --spec small --decode 1,64   # the cached greedy decode

`--decode N1,N2`: the Predictor's greedy decode of N1 and of N2 tokens instead
(`benchmarks.decode.cached_fn`), each op's thread time per call, and the
difference divided by N2 - N1: what one more decoder step costs, per op kind
and in all, against the wall time per step. Where the wall exceeds the ops'
time, the step is waiting on something other than its kernels (thunk dispatch,
the while loop's host round trip).

Thread time, not wall time: ops run on the XLA Eigen pool threads, concurrently
where the dependency graph allows, so the total can exceed the wall time.
"""

import argparse
import collections
import glob
import re
import tempfile
from typing import Any

import jax

from benchmarks import configs, decode, ours
from benchmarks.timing import progress, time_calls

COMPONENTS = (
  ('vit', r'/vit/|image_features'),
  ('fusion', r'/fusion/'),
  ('encoder', r'/encoder/|mt5\.encode'),
  ('decoder', r'/decoder/'),
  ('lm_head+loss', r'softmax|compute_loss|losses'),
)


def hlo_op_names(hlo_text: str) -> dict[str, str]:
  """{instruction name: op_name metadata} for every named HLO instruction."""
  pat = re.compile(r'^\s+(?:ROOT )?%([\w.\-]+) = .*?op_name="([^"]*)"', re.M)
  return {m.group(1): m.group(2) for m in pat.finditer(hlo_text)}


def component(op_name: str) -> str:
  """Model component of an op from its jax name stack (backward ops included)."""
  if not op_name:
    return 'unattributed'
  if 'jvp(' not in op_name and 'transpose(' not in op_name:
    # Outside the differentiated model function: the learner's update.
    return 'optimizer+other'
  for name, pat in COMPONENTS:
    if re.search(pat, op_name):
      return name
  return 'model other'


def thunk_times(xplane_path: str) -> tuple[collections.Counter, collections.Counter]:
  """(seconds, calls) per XLA thunk name summed over the Eigen worker threads."""
  from tensorflow.tsl.profiler.protobuf import xplane_pb2

  space = xplane_pb2.XSpace()
  with open(xplane_path, 'rb') as f:
    space.ParseFromString(f.read())
  secs, calls = collections.Counter(), collections.Counter()
  for plane in space.planes:
    if plane.name != '/host:CPU':
      continue
    md = plane.event_metadata
    for line in plane.lines:
      if not line.name.startswith('tf_XLAEigen'):
        continue
      for e in line.events:
        name = md[e.metadata_id].name
        if name.startswith(('ThunkExecutor', 'SlinkyThreadPool')):
          continue
        secs[name] += e.duration_ps / 1e12
        calls[name] += 1
  return secs, calls


def profile_step(spec: configs.BenchSpec, opts: configs.ModelOptions, steps: int) -> dict:
  """Profiles `steps` train steps.

  Returns:
    {'label': options, 'table': [[component, 'matmul' | 'other', thread s per
    step], ...], 'top': the 25 slowest ops [s, name, component, op_name]}.
  """
  ts = ours.build_train_step(spec, opts)
  jax.block_until_ready(ts.run())
  names = hlo_op_names(ts.compiled.as_text())
  with tempfile.TemporaryDirectory() as d:
    with jax.profiler.trace(d):
      for _ in range(steps):
        loss = ts.run()
      jax.block_until_ready(loss)
    path = glob.glob(f'{d}/**/*.xplane.pb', recursive=True)[0]
    secs, calls = thunk_times(path)
  table: dict[tuple[str, str], float] = collections.Counter()
  top = []
  for name, s in secs.items():
    kind = 'matmul' if re.match(r'(dot|convolution|custom-call)', name) else 'other'
    comp = component(names.get(name, ''))
    table[(comp, kind)] += s / steps
    top.append((s / steps, name, comp, names.get(name, '')))
  top.sort(reverse=True)
  rows = [[comp, kind, secs] for (comp, kind), secs in sorted(table.items())]
  return {'label': opts.label(), 'table': rows, 'top': [list(t) for t in top[:25]]}


def _kind(name: str) -> str:
  """The op kind of an XLA CPU thunk from its HLO instruction name."""
  for kind in ('dot', 'fusion', 'dynamic-update-slice', 'copy', 'reduce', 'custom-call', 'while'):
    if name.startswith(kind) or name.split('.')[0].endswith(kind):
      return kind
  return 'other'


def profile_decode(spec: configs.BenchSpec, lengths: tuple[int, int], calls: int) -> dict:
  """Per-decoder-step cost of the cached greedy decode, from two profiled lengths.

  Returns:
    {'lengths', 'wall': {n: s per call (best)}, 'kinds': {kind: [thread s per
    call at n1, at n2]}, 'top': the 15 ops whose time grows most per step}.
  """
  fns = decode.ours_fns(spec, lengths, methods=('cached',))
  wall, per_op = {}, {}
  for n in lengths:
    fn = fns[('ours_cached', n)]
    wall[n] = min(time_calls(fn, calls).samples)
    with tempfile.TemporaryDirectory() as d:
      with jax.profiler.trace(d):
        for _ in range(calls):
          out = fn()
        jax.block_until_ready(out)
      secs, _ = thunk_times(glob.glob(f'{d}/**/*.xplane.pb', recursive=True)[0])
    per_op[n] = {name: s / calls for name, s in secs.items()}
  n1, n2 = lengths
  kinds: dict[str, list[float]] = collections.defaultdict(lambda: [0.0, 0.0])
  for i, n in enumerate(lengths):
    for name, s in per_op[n].items():
      kinds[_kind(name)][i] += s
  growth = {
    name: (per_op[n2].get(name, 0.0) - per_op[n1].get(name, 0.0)) / (n2 - n1)
    for name in set(per_op[n1]) | set(per_op[n2])
  }
  top = sorted(growth.items(), key=lambda kv: -kv[1])[:15]
  return {'lengths': list(lengths), 'wall': wall, 'kinds': dict(kinds), 'top': top}


def format_decode_profile(result: dict) -> str:
  """Markdown table: thread ms per decoder step by op kind, and the wall ms per step."""
  n1, n2 = result['lengths']
  steps = n2 - n1
  lines = ['| op kind | thread ms per step |', '|---|---:|']
  rows = {k: (v[1] - v[0]) / steps * 1e3 for k, v in result['kinds'].items()}
  for k, ms in sorted(rows.items(), key=lambda kv: -kv[1]):
    lines.append(f'| {k} | {ms:.2f} |')
  lines.append(f'| **all ops** | {sum(rows.values()):.2f} |')
  wall = (result['wall'][n2] - result['wall'][n1]) / steps * 1e3
  lines.append(f'| wall per step (best call at {n2} minus at {n1}) | {wall:.2f} |')
  return '\n'.join(lines)


def format_profile(result: dict) -> str:
  """Markdown table: component x (matmul, other) thread seconds per step."""
  table = {(c, k): v for c, k, v in result['table']}
  comps = sorted(
    {c for c, _ in table}, key=lambda c: -sum(v for (k, _), v in table.items() if k == c)
  )
  total = sum(table.values())
  lines = ['| component | matmul s | other s | share |', '|---|---:|---:|---:|']
  for c in comps:
    mm, other = table.get((c, 'matmul'), 0.0), table.get((c, 'other'), 0.0)
    lines.append(f'| {c} | {mm:.3f} | {other:.3f} | {100 * (mm + other) / total:.0f}% |')
  mm = sum(v for (_, k), v in table.items() if k == 'matmul')
  lines.append(f'| **total** | {mm:.3f} | {total - mm:.3f} | 100% |')
  return '\n'.join(lines)


def main(argv: Any = None) -> None:
  p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  p.add_argument('--spec', default='small', choices=sorted(configs.SPECS))
  p.add_argument('--steps', type=int, default=2)
  p.add_argument('--vit-scan', type=int, default=1)
  p.add_argument('--vit-remat', default='default')
  p.add_argument('--mt5-scan', type=int, default=int(configs.OURS.mt5_scan))
  p.add_argument('--mt5-remat', default='default')
  p.add_argument('--dtype', default='float32')
  p.add_argument('--decode', default='', help='N1,N2: profile the cached decode instead')
  p.add_argument('--calls', type=int, default=3, help='decode calls timed and traced per length')
  a = p.parse_args(argv)
  if a.decode:
    n1, n2 = (int(n) for n in a.decode.split(','))
    progress(f'profiling {a.spec} greedy decode, {n1} and {n2} tokens')
    result = profile_decode(configs.SPECS[a.spec], (n1, n2), a.calls)
    print(format_decode_profile(result))
    print('\nops growing most per step (thread ms/step):')
    for name, s in result['top']:
      print(f'{s * 1e3:7.3f}  {name}')
    return
  opts = configs.ModelOptions(
    vit_scan=bool(a.vit_scan),
    vit_remat=a.vit_remat,
    mt5_scan=bool(a.mt5_scan),
    mt5_remat=a.mt5_remat,
    fprop_dtype=a.dtype,
  )
  progress(f'profiling {a.spec} [{opts.label()}]')
  result = profile_step(configs.SPECS[a.spec], opts, a.steps)
  print(format_profile(result))
  print('\nslowest ops (thread s/step, component, op_name):')
  for s, name, comp, op in result['top']:
    print(f'{s:7.3f}  {name:28s} {comp:14s} {op[-110:]}')


if __name__ == '__main__':
  main()
