"""Fine-tuning memory plan: which PaLI size x image size x TRAINABLE fits which device, at what batch.

Every figure is `benchmarks.memory_plan.plan`: the paxml train step of that exact
program (the LoRA one for TRAINABLE='lora', not a scaled full one) compiled
abstractly in its own child process, `compiled.memory_analysis()` per device.
Three per-device programs ("families") serve six named targets:

  family  mesh [replica, data, mdl]  fsdp  targets (HBM per device)
  single  [1, 1, 1]                   no   one 16 GiB device, one 80 GiB device,
                                           32 v4 chips as [1, 32, 1] (32 GiB)
  mdl4    [1, 1, 4]                   no   v4-8 (4 x 32 GiB), 32 v4 chips as [1, 8, 4]
  fsdp8   [1, 2, 4]                   yes  v5e-8 (8 x 16 GiB)

Without fsdp every per-device buffer depends only on the model axis and the
examples per data shard, not on the data-axis size (`memory_plan`'s module doc), so
the 32-chip meshes read the single / mdl4 programs at their examples per shard, and
a whole-slice experiment record (`--experiments`) counts as a point of its family.
For each (size, px, TRAINABLE, family) the driver compiles 1 then (if 1 fits a
target) `--second` (8) examples per data shard, fits live = A + B x examples, and
compiles the batch the fit chooses for up to `--confirm` targets. `cell` turns the records into the doc's table, so
tests/fiddle_configs/test_pods_doc.py checks docs/pods.md against them.

    python -m benchmarks.finetune_plan --sizes 3b,15b,17b --image-sizes 224,448 \
      --trainable lora,no_vit,all --out /tmp/finetune_plan.json
"""

import argparse
import dataclasses
import json
import math
import os
import sys
import time
from typing import Any

from benchmarks import machine, subproc
from benchmarks.timing import progress

GIB = 2**30
# INPUT_LEN, TARGET_LEN of every family program (memory_plan's defaults).
PLAN_LENGTHS = (64, 64)
# Largest global batch the plan looks for (the fine-tune experiments' BATCH_SIZE).
MAX_BATCH = 256


@dataclasses.dataclass(frozen=True)
class Family:
  """One per-device program: `mesh` [replica, data, mdl] on prod(mesh) emulated devices."""

  mesh: tuple[int, int, int]
  fsdp: bool


@dataclasses.dataclass(frozen=True)
class Target:
  """A table column: `family`'s program on devices of `hbm_gib` GiB, `data` data shards.

  Global batch = `data` x examples per data shard.
  """

  key: str
  label: str
  family: str
  hbm_gib: float
  data: int


FAMILIES = {
  'single': Family((1, 1, 1), False),
  'mdl4': Family((1, 1, 4), False),
  'fsdp8': Family((1, 2, 4), True),
}
# Column order of the doc's table; within a family, the order confirm compiles go in.
TARGETS = (
  Target('1x16', '1 device, 16 GiB', 'single', 16, 1),
  Target('1x80', '1 device, 80 GiB', 'single', 80, 1),
  Target('v4-8', 'v4-8: 4 x 32 GiB, [1,1,4]', 'mdl4', 32, 1),
  Target('v5e-8', 'v5e-8: 8 x 16 GiB, [1,2,4] fsdp', 'fsdp8', 16, 2),
  Target('v4-64/dp', '32 v4 chips, [1,32,1]', 'single', 32, 32),
  Target('v4-64/mdl4', '32 v4 chips, [1,8,4]', 'mdl4', 32, 8),
)
CONFIRM_ORDER = ('1x80', 'v4-64/dp', '1x16', 'v4-64/mdl4', 'v4-8', 'v5e-8')


def _points(recs: list[dict[str, Any]], key: tuple) -> dict[int, dict[str, Any]]:
  """{examples per data shard: record} of one (size, px, trainable, dtype, family)."""
  out = {}
  for r in recs:
    if 'peak' in r and _key(r) == key:
      out[r['batch'] // (r['mesh'][0] * r['mesh'][1])] = r
  return out


def _family(r: dict[str, Any]) -> str:
  """The family whose per-device program `r` compiled: its own, or for a whole-slice
  experiment record without fsdp and with the table's lengths, the [1, 1, mdl] family
  (same buffers per device)."""
  if r['family'] in FAMILIES or r.get('fsdp', True) or r['mesh'][0] != 1:
    return r['family']
  if (r['input_len'], r['target_len']) != PLAN_LENGTHS:  # another program than the table's
    return r['family']
  same = [n for n, f in FAMILIES.items() if f.mesh == (1, 1, r['mesh'][2]) and not f.fsdp]
  return same[0] if same else r['family']


def _key(r: dict[str, Any], raw: bool = False) -> tuple:
  fam = r['family'] if raw else _family(r)
  return (r['size'], r['image_size'], r['trainable'], r['param_dtype'], fam)


def cell(recs: list[dict[str, Any]], key: tuple, t: Target) -> dict[str, Any]:
  """What the records say about one table cell (`key` without the family; bytes in GiB).

  status: 'state' (params + optimizer state per device alone exceed the HBM),
  'nofit' (compiled at 1 example per data shard, too big), 'skip' (not compiled: a
  smaller program of the same family already did not fit, `because`), 'fits'
  (`batch`: the largest global batch <= MAX_BATCH, `how` 'compiled' or 'fit': on
  the line between the largest compiled batch that fits and the smallest that does
  not, or through the two largest that fit), or 'missing'.
  """
  fkey = (*key, t.family)
  pts = _points(recs, fkey)
  cap = t.hbm_gib * GIB
  if not pts:
    skip = [r for r in recs if 'skipped' in r and _key(r) == fkey]
    if skip:
      return dict(status='skip', gib=skip[0]['gib'], because=skip[0]['skipped'])
    return dict(status='missing')
  any_rec = next(iter(pts.values()))
  state = any_rec['params_per_device'] + any_rec['opt_state_per_device']
  if state > cap:
    return dict(status='state', gib=state / GIB)
  if 1 not in pts:
    return dict(status='missing')
  if pts[1]['peak'] > cap:
    return dict(status='nofit', gib=pts[1]['peak'] / GIB, batch=t.data)
  max_s = MAX_BATCH // t.data
  good = sorted(s for s, r in pts.items() if r['peak'] <= cap and s <= max_s)
  bad = sorted(s for s, r in pts.items() if r['peak'] > cap)
  limit = min([max_s] + [s - 1 for s in bad])
  # Interpolate between the largest batch that fits and the smallest that does not;
  # extrapolate from the two largest that fit when none failed.
  if bad and bad[0] > good[-1]:
    sa, sb = good[-1], bad[0]
  elif len(good) >= 2:
    sa, sb = good[-2:]
  else:
    return dict(status='missing')
  pa, pb = pts[sa]['peak'], pts[sb]['peak']
  slope = (pb - pa) / (sb - sa)
  s_fit = limit if slope <= 0 else min(limit, sa + math.floor((cap - pa) / slope))
  s_fit = max(s_fit, good[-1])
  if s_fit in pts:
    gib, how = pts[s_fit]['peak'] / GIB, 'compiled'
  else:
    gib, how = (pa + slope * (s_fit - sa)) / GIB, 'fit'
  return dict(status='fits', batch=s_fit * t.data, s=s_fit, gib=gib, how=how, capped=s_fit == max_s)


def cell_text(c: dict[str, Any]) -> str:
  """The doc's wording of a `cell`."""
  if c['status'] == 'fits':
    tilde = '~' if c['how'] == 'fit' else ''
    plus = '+' if c['capped'] else ''
    return f'fits at batch {tilde}{c["batch"]}{plus} ({tilde}{c["gib"]:.1f} GiB)'
  if c['status'] == 'nofit':
    return f'does not fit ({c["gib"]:.1f} GiB at batch {c["batch"]})'
  if c['status'] == 'state':
    return f'does not fit: params + opt state = {c["gib"]:.1f} GiB'
  if c['status'] == 'skip':
    return f'does not fit (> {c["gib"]:.1f} GiB, as {c["because"].split(" at ")[0]} does not)'
  return 'not planned'


def rows(recs: list[dict[str, Any]]) -> list[tuple]:
  """(size, px, trainable, param dtype) of every planned row, in table order."""
  seen = {_key(r)[:4] for r in recs if r['family'] in FAMILIES}
  order = {'3b': 0, '15b': 1, '17b': 2}
  tr = {'all': 0, 'no_vit': 1, 'lora': 2}
  return sorted(seen, key=lambda k: (order.get(k[0], 9), k[3] != 'float32', k[1], tr.get(k[2], 9)))


def table_md(recs: list[dict[str, Any]]) -> str:
  """The docs/pods.md fit table of these records (one line per row)."""
  head = ['size', 'px', 'TRAINABLE', 'params', *(t.label for t in TARGETS)]
  lines = ['| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
  for key in rows(recs):
    size, px, tr, dtype = key
    cells = [cell_text(cell(recs, key, t)) for t in TARGETS]
    lines.append('| ' + ' | '.join([size, str(px), tr, dtype, *cells]) + ' |')
  return '\n'.join(lines)


def store(path: str, run: dict[str, Any]) -> None:
  """Writes `run` (machine, command, wall_s, records) as `path`'s 'finetune_plan' entry."""
  with open(path) as f:
    results = json.load(f)
  results['finetune_plan'] = run
  with open(path, 'w') as f:
    json.dump(results, f, indent=1, default=str)


def update_doc(path: str, recs: list[dict[str, Any]]) -> None:
  """Replaces the fit table in markdown file `path` (or its 'FIT_TABLE' line) by `table_md`."""
  with open(path) as f:
    lines = f.read().split('\n')
  start = next(i for i, ln in enumerate(lines) if ln == 'FIT_TABLE' or ln.startswith('| size |'))
  end = start + 1
  while end < len(lines) and lines[end].startswith('|'):
    end += 1
  lines[start:end] = table_md(recs).split('\n')
  with open(path, 'w') as f:
    f.write('\n'.join(lines))


def _compile(key: tuple, s: int, timeout: float) -> dict[str, Any] | None:
  size, px, tr, dtype, fam_name = key
  fam = FAMILIES[fam_name]
  n = math.prod(fam.mesh)
  args = ['--size', size, '--image-size', str(px), '--devices', str(n), '--trainable', tr]
  args += ['--mesh', ','.join(map(str, fam.mesh)), '--batch', str(s * fam.mesh[0] * fam.mesh[1])]
  args += ['--fsdp', str(fam.fsdp), '--param-dtype', dtype]
  t0 = time.perf_counter()
  rec = subproc.run_child('benchmarks.memory_plan', args, timeout=timeout, devices=n)
  if rec is not None:
    rec.update(family=fam_name, child_s=time.perf_counter() - t0)
    progress(f'  {fam_name} {key[:4]} s={s}: {rec["peak"] / GIB:.2f} GiB ({rec["child_s"]:.0f} s)')
  return rec


def plan_point(
  recs: list[dict[str, Any]], key: tuple, second: int, confirm: int, timeout: float
) -> list[dict[str, Any]]:
  """Compile one (size, px, trainable, dtype, family): new records (appended to `recs` too).

  1 example per data shard; if that fits a target of the family, `second` examples,
  then up to `confirm` batches the fit chooses (`cell`).
  """
  size, px, tr, dtype, fam_name = key
  targets = [t for t in TARGETS if t.family == fam_name]
  max_cap = max(t.hbm_gib for t in targets) * GIB
  # Monotone: a bigger image, or more trained variables, needs at least as much.
  smaller = [((size, 224, tr, dtype, fam_name), '224 px')] if px > 224 else []
  if tr == 'all':
    smaller.append(((size, px, 'no_vit', dtype, fam_name), 'no_vit'))
  for skey, why in smaller:
    p1 = _points(recs, skey).get(1)
    gib = p1['peak'] / GIB if p1 else None
    # A skipped smaller program passes its reason on.
    gib = gib or next((r['gib'] for r in recs if 'skipped' in r and _key(r) == skey), None)
    if gib and gib * GIB > max_cap:
      rec = dict(
        zip(('size', 'image_size', 'trainable', 'param_dtype', 'family'), key, strict=True)
      )
      rec.update(skipped=f'{why} at batch 1', gib=gib)
      progress(f'  {fam_name} {key[:4]}: skipped ({why} needs {rec["gib"]:.1f} GiB)')
      recs.append(rec)
      return [rec]
  new = []

  def run(s: int) -> bool:
    rec = _compile(key, s, timeout)
    if rec is not None:
      recs.append(rec)
      new.append(rec)
    return rec is not None

  if not run(1) or new[-1]['peak'] > max_cap:
    return new
  run(second)
  left = confirm
  for tk in CONFIRM_ORDER:
    t = next((t for t in targets if t.key == tk), None)
    while t is not None and left > 0:
      c = cell(recs, key[:4], t)
      if c['status'] != 'fits' or c['how'] != 'fit':
        break
      left -= 1
      if not run(c['s']):
        break
  return new


def experiment_point(name: str, timeout: float) -> dict[str, Any] | None:
  """Compiles registered experiment `name`'s own train step: its mesh, FSDP, TRAINABLE, batch.

  On prod(ICI_MESH_SHAPE) emulated devices (the whole slice, not a smaller
  program); the record's `family` is 'experiment:' + name.
  """
  from pali_pax.fiddle_configs import registry

  exp = registry.get_experiment(name)()
  mesh = tuple(exp.ICI_MESH_SHAPE)
  n = math.prod(mesh)
  args = ['--size', exp.MODEL, '--image-size', str(exp.IMAGE_SIZE), '--devices', str(n)]
  args += ['--trainable', exp.trainable(), '--mesh', ','.join(map(str, mesh))]
  args += ['--batch', str(exp.BATCH_SIZE), '--fsdp', str(exp.FSDP)]
  args += ['--input-len', str(exp.INPUT_LEN), '--target-len', str(exp.TARGET_LEN)]
  t0 = time.perf_counter()
  rec = subproc.run_child('benchmarks.memory_plan', args, timeout=timeout, devices=n)
  if rec is not None:
    rec.update(family=f'experiment:{name}', child_s=time.perf_counter() - t0)
    progress(f'  {name}: {rec["peak"] / GIB:.2f} GiB per device ({rec["child_s"]:.0f} s)')
  return rec


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  p.add_argument('--sizes', default='3b,15b,17b')
  p.add_argument('--image-sizes', default='224,448')
  p.add_argument('--trainable', default='lora,no_vit,all', help='in this order: skips use it')
  p.add_argument('--families', default=','.join(FAMILIES))
  p.add_argument('--param-dtype', default='float32')
  p.add_argument('--second', type=int, default=8, help='second batch per data shard compiled')
  p.add_argument('--confirm', type=int, default=0, help='confirm compiles per point')
  p.add_argument('--timeout', type=float, default=900, help='seconds per child')
  p.add_argument('--experiments', default='PaliFinetuneCocoCaptions', help='compiled as set')
  p.add_argument('--store', help="also write the run into this JSON's 'finetune_plan' key")
  p.add_argument('--doc', help='markdown file whose fit table (or FIT_TABLE line) to rewrite')
  p.add_argument('--out', required=True, help='JSON: records, machine, command (rewritten often)')
  a = p.parse_args()
  t0 = time.perf_counter()
  cmd = ' '.join(['python -m benchmarks.finetune_plan', *sys.argv[1:]])
  out: dict[str, Any] = dict(machine=machine.describe(), command=cmd, wall_s=0.0, records=[])
  if os.path.exists(a.out):  # resume: keep what an earlier run compiled, and its facts
    with open(a.out) as f:
      out = json.load(f)
  recs, wall0 = out['records'], out.get('wall_s', 0.0)
  for name in filter(None, a.experiments.split(',')):
    if not any(r['family'] == f'experiment:{name}' for r in recs):
      rec = experiment_point(name, a.timeout)
      recs.extend([rec] if rec else [])
  for size in a.sizes.split(','):
    for fam in a.families.split(','):
      for tr in a.trainable.split(','):
        for px in map(int, a.image_sizes.split(',')):
          key = (size, px, tr, a.param_dtype, fam)
          if any(_key(r, raw=True) == key for r in recs):
            continue
          progress(f'{key} ({time.perf_counter() - t0:.0f} s so far)')
          plan_point(recs, key, a.second, a.confirm, a.timeout)
          out['wall_s'] = wall0 + time.perf_counter() - t0
          with open(a.out, 'w') as f:
            json.dump(out, f, indent=1)
  if a.store:
    store(a.store, out)
  if a.doc:
    update_doc(a.doc, recs)
  print(table_md(recs))
  n = sum('peak' in r for r in recs)
  print(f'\n{n} compiles, {time.perf_counter() - t0:.0f} s')


if __name__ == '__main__':
  main()
