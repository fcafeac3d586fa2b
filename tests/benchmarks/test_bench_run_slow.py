"""The benchmark harness end to end on a tiny PaLI: `benchmarks.run` matmul + train sections
written to JSON and docs (no torch). Slow (~25 s); the default suite keeps
test_bench_smoke's FLOP counts and helpers.
"""

import json
import math

import pytest

from benchmarks import run
from tests.benchmarks.test_bench_smoke import TRAIN

pytestmark = pytest.mark.slow


def test_run_command_on_tiny(tmp_path, capsys):
  out = tmp_path / 'bench.json'
  # Unscanned stacks: XLA's cost analysis then counts every layer.
  argv = [
    '--sections',
    'matmul,train',
    '--specs',
    'tiny',
    '--no-peer',
    '--repeats',
    '2',
    '--matmul-sizes',
    '128',
    '--matmul-repeats',
    '1',
    '--options',
    'vit_scan=False,mt5_scan=False',
    '--json',
    str(out),
    '--write-docs',
    '--docs-dir',
    str(tmp_path),
  ]
  assert run.main(argv) == 0
  res = json.loads(out.read_text())
  mm = res['matmul']
  assert {r['dtype'] for r in mm} == {'float32', 'bfloat16'}
  assert all(math.isfinite(r['flops_per_s']) and r['flops_per_s'] > 0 for r in mm)
  ours = res['train'][0]['ours']
  step = ours['step']
  assert step['n'] == 2 and 0 < step['lo'] <= step['median'] <= step['hi'] < 60
  assert ours['flops_analytic'] == TRAIN
  # XLA counts every matmul (and the elementwise work on top): never fewer FLOPs.
  assert TRAIN <= ours['flops_xla'] < 3 * TRAIN
  assert ours['n_params'] > 0 and math.isfinite(ours['loss'])
  assert ours['memory']['argument'] > 0
  md = (tmp_path / 'benchmarks.md').read_text()
  assert 'python -m benchmarks.run' in md and '| tiny' in md
  assert 'train tiny: ours' in capsys.readouterr().out


def test_decode_profile_on_tiny():
  from benchmarks import profile

  res = profile.profile_decode(profile.configs.SPECS['tiny'], (1, 4), calls=1)
  assert set(res['wall']) == {1, 4} and res['wall'][4] > 0
  dots = res['kinds']['dot']
  # Three more decoder steps run three more rounds of the decoder's and lm head's matmuls.
  assert dots[1] > dots[0] > 0
  assert res['top'] and all(name for name, _ in res['top'])
  assert 'wall per step' in profile.format_decode_profile(res)
