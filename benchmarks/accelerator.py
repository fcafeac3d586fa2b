"""The accelerator run: train steps and cached greedy decoding, MFU against the chip's peak.

    python -m benchmarks.accelerator --out OUT.json [--specs small,base] [--batch 64]
        [--steps 10] [--dtype bfloat16] [--decode-batch 8] [--decode-lengths 16,64]

Model-only (`benchmarks.model_step`: PaliModel, its loss and praxis' Adam update;
`benchmarks.decode`: the Predictor's KV-cached greedy program), so neither paxml nor
seqio nor TensorFlow is imported: it runs on a GPU image that has a newer jax and no
TensorFlow, with praxis and its pure-Python needs carried as wheels
(`tools/device_wheels.sh`, which also prints the device command). On the CPU the same
script runs the tiny spec in the suite.

MFU is model FLOPs per second (`benchmarks.flops`: matmuls only, recomputation not
counted) over two denominators: the chip's datasheet dense bfloat16 peak (`PEAKS`, by
device kind; none for CPUs) and a bfloat16 [n, n] @ [n, n] measured in the same process.
"""

import argparse
import json
import sys
from typing import Any

from pali_pax.core import jax_compat

jax_compat.add_xla_client_alias()  # before praxis is imported, which the modules below do

import jax  # noqa: E402

from benchmarks import configs, decode, flops, matmul, model_step  # noqa: E402
from benchmarks.timing import progress, time_calls  # noqa: E402

# Dense (no sparsity) bfloat16 tensor-core peaks, FLOP/s, by a substring of device_kind.
PEAKS = {'H100': 989.4e12, 'H200': 989.4e12, 'A100': 312e12, 'L4': 121e12}


def datasheet_peak(device_kind: str) -> float | None:
  """The bfloat16 peak of `device_kind` ('NVIDIA H100 80GB HBM3', ...), None if unknown."""
  return next((v for k, v in PEAKS.items() if k in device_kind), None)


def device_memory_peak() -> int | None:
  """Peak bytes the first device's allocator held so far (GPU / TPU), None where not kept."""
  stats = jax.devices()[0].memory_stats() or {}
  return stats.get('peak_bytes_in_use')


def train(spec: configs.BenchSpec, dtype: str, steps: int, peaks: dict[str, float | None]) -> dict:
  """Times `steps` model-only train steps of `spec` after two warm-ups; MFU per denominator."""
  progress(f'train {spec.name} batch {spec.batch} {dtype}: compiling')
  step = model_step.build_model_step(spec, configs.ModelOptions(fprop_dtype=dtype))
  losses = []

  def one() -> Any:
    loss = step.run()
    losses.append(loss)
    return loss

  timing = time_calls(one, steps, warmup=2, label=f'train {spec.name}')
  model_flop = flops.train_flops(spec)
  rate = model_flop / timing.median
  return dict(
    spec=spec.name,
    batch=spec.batch,
    dtype=dtype,
    params=step.n_params,
    compile_s=step.compile_s,
    timing=timing.to_json(),
    losses=[float(x) for x in losses],
    model_gflop_per_step=model_flop / 1e9,
    tflop_per_s=rate / 1e12,
    mfu={name: (rate / p if p else None) for name, p in peaks.items()},
    device_peak_bytes=device_memory_peak(),
  )


def greedy(spec: configs.BenchSpec, dtype: str, lengths: tuple[int, ...], repeats: int) -> dict:
  """Whole-call times of the cached greedy decode per length (1 added), and the per-token cost
  (`decode.per_token` at the longest length)."""
  lengths = tuple(sorted({1, *lengths}))
  fns = decode.ours_fns(spec, lengths, configs.ModelOptions(fprop_dtype=dtype), ('cached',))
  timings = {
    n: time_calls(fns[('ours_cached', n)], repeats, label=f'decode n={n}') for n in lengths
  }
  records = [dict(method='cached', steps=n, timing=t.to_json()) for n, t in timings.items()]
  return dict(
    spec=spec.name,
    batch=spec.batch,
    dtype=dtype,
    calls={str(r['steps']): r['timing'] for r in records},
    per_token_s=decode.per_token(records, 'cached', lengths[-1]),
  )


def run(
  specs: list[str],
  batch: int,
  steps: int,
  dtype: str,
  decode_batch: int,
  decode_lengths: tuple[int, ...],
  matmul_n: int,
) -> dict:
  """Every measurement of the run, as one JSON-able record."""
  dev = jax.devices()[0]
  peaks = {
    'datasheet': datasheet_peak(dev.device_kind) if dev.platform != 'cpu' else None,
    'measured_matmul': matmul.matmul_rate(matmul_n, 'bfloat16', repeats=5)['flops_per_s'],
  }
  out: dict[str, Any] = dict(
    device_kind=dev.device_kind,
    platform=dev.platform,
    versions={m: sys.modules[m].__version__ for m in ('jax', 'jaxlib', 'flax') if m in sys.modules},
    peaks=peaks,
    train=[],
    decode=[],
  )
  for name in specs:
    spec = configs.SPECS[name]
    out['train'].append(train(spec.replace(batch=batch), dtype, steps, peaks))
    out['decode'].append(greedy(spec.replace(batch=decode_batch), dtype, decode_lengths, steps))
  return out


def table(rec: dict) -> str:
  """The run as markdown: one row per train spec, one per decode spec."""
  lines = [
    f'{rec["device_kind"]} ({rec["platform"]}), {rec["versions"]}; measured bf16 matmul '
    f'{rec["peaks"]["measured_matmul"] / 1e12:.1f} TFLOP/s',
    '',
    '| spec | batch | dtype | step | TFLOP/s | MFU (datasheet) | MFU (measured matmul) |',
    '|---|---:|---|---|---:|---:|---:|',
  ]
  for r in rec['train']:
    mfu = {k: '-' if v is None else f'{100 * v:.0f}%' for k, v in r['mfu'].items()}
    lines.append(
      f'| {r["spec"]} | {r["batch"]} | {r["dtype"]} | {r["timing"]["median"] * 1e3:.1f} ms '
      f'| {r["tflop_per_s"]:.1f} | {mfu["datasheet"]} | {mfu["measured_matmul"]} |'
    )
  lengths = list(rec['decode'][0]['calls']) if rec['decode'] else []
  lines += [
    '',
    '| decode spec | batch | ' + ' | '.join(f'{n} tokens' for n in lengths) + ' | per token |',
    '|---|---:|' + '---|' * (len(lengths) + 1),
  ]
  for r in rec['decode']:
    calls = ' | '.join(f'{t["median"] * 1e3:.1f} ms' for t in r['calls'].values())
    per = '-' if r['per_token_s'] is None else f'{r["per_token_s"] * 1e3:.2f} ms'
    lines.append(f'| {r["spec"]} | {r["batch"]} | {calls} | {per} |')
  return '\n'.join(lines)


def main(argv: list[str] | None = None) -> None:
  ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
  ap.add_argument('--out', required=True, help='JSON file for the whole record')
  ap.add_argument('--specs', default='small,base', help=f'of {sorted(configs.SPECS)}')
  ap.add_argument('--batch', type=int, default=64, help='train examples per step')
  ap.add_argument('--steps', type=int, default=10, help='timed calls per measurement')
  ap.add_argument('--dtype', default='bfloat16', choices=('bfloat16', 'float32'))
  ap.add_argument('--decode-batch', type=int, default=8)
  ap.add_argument('--decode-lengths', default='16,64', help='tokens; 1 is always added')
  ap.add_argument('--matmul-n', type=int, default=8192, help='side of the measured bf16 matmul')
  args = ap.parse_args(argv)
  specs = args.specs.split(',')
  unknown = [s for s in specs if s not in configs.SPECS]
  if unknown:
    ap.error(f'unknown spec(s) {unknown}; known: {sorted(configs.SPECS)}')
  lengths = tuple(int(n) for n in args.decode_lengths.split(','))
  rec = run(specs, args.batch, args.steps, args.dtype, args.decode_batch, lengths, args.matmul_n)
  with open(args.out, 'w') as f:
    json.dump(rec, f, indent=1)
  print(table(rec))


if __name__ == '__main__':
  main()
