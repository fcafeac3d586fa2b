"""docs/benchmarks.md and docs/benchmarks_resolution.png from the results JSON."""

import os
from typing import Any

from benchmarks import decode, matmul

GiB = 2**30
HEADER = """# Benchmarks

Regenerate everything (about an hour on the 2-core machine below):

    python -m benchmarks.run --write-docs          # or: make bench  (installs the optional deps)

One section only, keeping the others' stored results (`docs/benchmarks.json`):

    python -m benchmarks.run --sections decode --write-docs
    python -m benchmarks.run --docs-only           # rewrite this file from the JSON

A rewrite keeps this file's start-up section and hand-written analysis (from
'## Start-up' on): edit those here, they have no other copy.

Optional dependencies (torch, transformers, matplotlib; `requirements/bench-lock.txt`)
are needed only for the peer and the plot. `python -m benchmarks.profile --spec small`
prints where the train step's time goes (jax profiler + XLA op attribution).

Figures are medians over timed repeats after one warm-up call, with [min-max] of
the repeats. Comparisons (ours vs peer, each speed change vs its baseline, decoding
methods) were timed **round-robin in one process**, so their ratios hold even though
this shared machine's load drifts (load averages below). In the train table (runs from
2026-12-07 on) each timed step follows one untimed step of the same model, so no
framework's step pays for the state the other one left.
"""


def _fmt_s(t: dict[str, Any], scale: float = 1.0, unit: str = 's') -> str:
  return f'{t["median"] * scale:.3g} {unit} [{t["lo"] * scale:.3g}-{t["hi"] * scale:.3g}]'


def _gib(n: float | None) -> str:
  return '-' if n is None else f'{n / GiB:.2f}'


def machine_md(m: dict[str, Any], runs: list[dict[str, Any]] | None = None) -> str:
  v = m.get('versions', {})
  mem = m.get('memory_bytes')
  lines = [
    '## Machine',
    '',
    "Each section's figures come from the newest run below that lists it; runs on "
    'different CPUs do not compare.',
    '',
    f'- CPU (newest run): {m.get("cpu_model")} ({m.get("cpus")} cores usable: {m.get("cpus_usable")}, '
    f'{m.get("threads_per_core")} thread/core, {m.get("hypervisor") or "bare metal"} VM), '
    f'ISA: {", ".join(m.get("isa", []))}',
    f'- memory: {_gib(mem)} GiB; Python {m.get("python")}',
    '- ' + ', '.join(f'{k} {val}' for k, val in v.items() if val),
    f'- XLA_FLAGS: `{m.get("xla_flags") or "(none)"}`; jax and torch both use '
    f'{m.get("cpus_usable")} threads',
  ]
  for run in runs or [m]:
    start = tuple(round(x, 1) for x in run.get('load_avg_start', ()))
    end = tuple(round(x, 1) for x in run.get('load_avg_end', ()))
    what = ', '.join(run.get('sections', [])) or 'all sections'
    cpu = run.get('cpu_model') or m.get('cpu_model')
    isa = ', '.join(run.get('isa') or m.get('isa', []))
    lines.append(
      f'- run {run.get("date")} on {cpu} ({isa}) ({what}): load average {start} at start, '
      f'{end} at end'
    )
  lines.append('')
  return '\n'.join(lines)


def matmul_md(recs: list[dict[str, Any]]) -> str:
  lines = [
    "## The machine's limit: jnp matmul",
    '',
    '| size | dtype | time | GFLOP/s (median) | GFLOP/s (best) |',
    '|---|---|---|---:|---:|',
  ]
  for r in recs:
    lines.append(
      f'| {r["n"]}x{r["n"]} | {r["dtype"]} | {_fmt_s(r["timing"], 1e3, "ms")} | '
      f'{r["flops_per_s"] / 1e9:.0f} | {r["flops_per_s_best"] / 1e9:.0f} |'
    )
  lines += [
    '',
    f'MFU below is model FLOPs per second over the best float32 median, '
    f'{matmul.peak(recs) / 1e9:.0f} GFLOP/s.',
    '',
  ]
  return '\n'.join(lines)


def train_md(recs: list[dict[str, Any]], peak: float) -> str:
  lines = [
    '## Train step: ours vs the peer',
    '',
    'Ours: paxml `tasks_lib.SingleTask` + praxis Adam learner, `trainer_lib.'
    'train_step_single_learner` jitted with the TrainState donated (forward, backward, '
    'update). Peer: HF SiglipVisionModel -> nn.Linear -> MT5ForConditionalGeneration '
    '(inputs_embeds + attention_mask), torch.optim.AdamW. Batch 8, prompt 16, target 16, '
    'vocabulary 32k, float32, same parameter count.',
    '',
    '| model | params | ours step | ours ex/s | peer step | peer ex/s | ours/peer time |'
    ' model GFLOP/step | XLA GFLOP/step | ours GFLOP/s | MFU | compile |',
    '|---|---:|---|---:|---|---:|---:|---:|---:|---:|---:|---:|',
  ]
  for r in recs:
    o, p = r['ours'], r.get('peer')
    spec = o['spec']
    model = f'{r["spec"]} (ViT-{spec["vit"]} {spec["image_size"]}px + mT5-{spec["mt5"]})'
    if p and not r.get('interleaved', True):
      model += ' (timed one after the other)'
    rate = o['flops_analytic'] / o['step']['median']
    xla = o.get('flops_xla')
    lines.append(
      f'| {model} | {o["n_params"] / 1e6:.1f}M | {_fmt_s(o["step"])} | {o["examples_per_s"]:.2f} | '
      + (
        f'{_fmt_s(p["step"])} | {p["examples_per_s"]:.2f} | '
        f'{o["step"]["median"] / p["step"]["median"]:.2f} | '
        if p
        else '- | - | - | '
      )
      + f'{o["flops_analytic"] / 1e9:.0f} | {xla / 1e9 if xla else float("nan"):.0f} | '
      f'{rate / 1e9:.0f} | {100 * rate / peak:.0f}% | {o["compile_s"]:.0f} s |'
    )
  lines += [
    '',
    'Model FLOPs: matmuls of ViT (N visual tokens), projection, mT5 encoder over N + 16 '
    'tokens, decoder (self, cross over N + 16, gated FF) and lm head, x3 for forward + '
    'backward (x2 for the patch embedding, whose input needs no gradient); '
    'recomputation is not counted (`benchmarks/flops.py`). XLA GFLOP is '
    '`compiled.cost_analysis()["flops"]`, which counts a scanned (while-loop) body once, '
    'so it under-reports scanned stacks.',
    '',
  ]
  return '\n'.join(lines)


def decode_md(recs: list[dict[str, Any]]) -> str:
  methods = []
  for r in recs:
    if r['method'] not in methods:
      methods.append(r['method'])
  lengths = sorted({r['steps'] for r in recs if r['steps'] > 1})
  t = {(r['method'], r['steps']): r['timing'] for r in recs}
  head = ' | '.join(f'{n} tokens (whole call)' for n in lengths)
  per = ' | '.join(f'per token @{n}' for n in lengths)
  lines = [
    '## Greedy decoding (small, batch 8)',
    '',
    'Whole call = ViT + projection + encoder + n greedy steps. Per token = (T(n) - T(1)) / '
    '(n - 1), the marginal cost of a decoder step. `ours_cached`: PaliModel.decode_with_params '
    '(praxis greedy sample_decode, our KV cache), one jitted program. `ours_recompute`: no '
    'cache, the teacher-forced decoder re-runs over the [B, n] buffer every step. '
    '`peer_generate`: HF generate(greedy, use_cache=True). `ours_cached_mt5_scanned`: '
    'ours_cached with scanned mT5 stacks decoding over per-layer caches '
    '(`unroll_in_decode=True`); `..._stacked_decode`: scanned stacks decoding with a scan '
    'over the stacked caches (the default). `ours_cached_fused`: ours_cached with the mT5 '
    'attention and gated feed-forward input projections each as one matmul '
    '(`mt5_fused=True`).',
    '',
    f'| method | 1 token | {head} | {per} | per-token growth {lengths[0]}->{lengths[-1]} |',
    '|---|---|' + '---|' * len(lengths) + '---:|' * len(lengths) + '---:|',
  ]
  for m in methods:
    pts = [decode.per_token(recs, m, n) for n in lengths]
    growth = pts[-1] / pts[0] if pts[0] and pts[-1] and pts[0] > 0 else float('nan')
    growth_txt = f'{growth:.2f}x' if growth == growth else '-'
    lines.append(
      f'| {m} | {_fmt_s(t[(m, 1)])} | '
      + ' | '.join(_fmt_s(t[(m, n)]) if (m, n) in t else '-' for n in lengths)
      + ' | '
      + ' | '.join(f'{1e3 * p:.1f} ms' if p is not None else '-' for p in pts)
      + f' | {growth_txt} |'
    )
  for m in methods:
    # The peer at every length (the goal is stated per length), other methods at the longest.
    for n in lengths if m == 'peer_generate' else lengths[-1:]:
      if m != 'ours_cached' and ('ours_cached', n) in t and (m, n) in t:
        ratio = t[(m, n)]['median'] / t[('ours_cached', n)]['median']
        lines.append(f'\n{m} / ours_cached at {n} tokens: {ratio:.2f}x the time.')
  lines.append('')
  return '\n'.join(lines)


def scaling_md(recs: list[dict[str, Any]], plot_name: str | None) -> str:
  lines = [
    '## How cost grows with resolution (small, patch 14)',
    '',
    'ViT-S/14 + mT5-small, batch as in the table; each point in its own process. Peak RSS '
    "is the process's maximum resident set (VmHWM) after the timed steps; XLA temp "
    "is the compiled step's scratch (activations kept for the backward pass, gradients).",
    '',
    '| options | image | visual tokens | batch | step | ex/s | model GFLOP/step | ours GFLOP/s | '
    'XLA args GiB | XLA temp GiB | peak RSS GiB |',
    '|---|---|---:|---:|---|---:|---:|---:|---:|---:|---:|',
  ]
  for r in recs:
    mem = r.get('memory') or {}
    lines.append(
      f'| {r["label"]} | {r["image_size"]} px | {r["n_visual"]} | {r["spec"]["batch"]} | '
      f'{_fmt_s(r["step"])} | '
      f'{r["examples_per_s"]:.2f} | {r["flops_analytic"] / 1e9:.0f} | '
      f'{r["flops_analytic"] / r["step"]["median"] / 1e9:.0f} | {_gib(mem.get("argument"))} | '
      f'{_gib(mem.get("temp"))} | {_gib(r.get("peak_rss"))} |'
    )
  if plot_name:
    lines += ['', f'![step time against resolution]({plot_name})']
  lines.append('')
  return '\n'.join(lines)


def plot_scaling(recs: list[dict[str, Any]], path: str) -> bool:
  """Step time against resolution, one line per option set; False without matplotlib."""
  try:
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
  except ImportError:
    return False
  fig, ax = plt.subplots(figsize=(7, 4.5))
  labels = []
  for r in recs:
    if r['label'] not in labels:
      labels.append(r['label'])
  for label in labels:
    pts = sorted((r for r in recs if r['label'] == label), key=lambda r: r['image_size'])
    x = [r['image_size'] for r in pts]
    med = [r['step']['median'] for r in pts]
    err = [
      [m - r['step']['lo'] for m, r in zip(med, pts, strict=True)],
      [r['step']['hi'] - m for m, r in zip(med, pts, strict=True)],
    ]
    ax.errorbar(x, med, yerr=err, marker='o', capsize=4, label=f'step: {label}')
  ref = min(recs, key=lambda r: (r['image_size'], r['step']['median']))
  pts = sorted({r['image_size']: r for r in recs}.values(), key=lambda r: r['image_size'])
  scale = ref['step']['median'] / ref['flops_analytic']
  ax.plot(
    [r['image_size'] for r in pts],
    [r['flops_analytic'] * scale for r in pts],
    '--',
    color='gray',
    label='model FLOPs (scaled to the fastest 224 px step)',
  )
  ax.set_xlabel('image side (px), patch 14 (visual tokens)')
  ax.set_ylabel('seconds per train step')
  ax.set_xticks(
    [r['image_size'] for r in pts], [f'{r["image_size"]}\n({r["n_visual"]})' for r in pts]
  )
  ax.set_title(f'PaLI small (ViT-S/14 + mT5-small), batch {pts[0]["spec"]["batch"]}')
  ax.grid(alpha=0.3)
  ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)
  return True


def memory_md(recs: list[dict[str, Any]]) -> str:
  from benchmarks import memory_plan

  lines = [
    "## Memory plan at the paper's scale (compiled abstractly, nothing allocated)",
    '',
    "paxml train step (factored Adafactor learner; ViT frozen at 224 px as in PaLI's main "
    'phase, trained at 588 px as in the high-resolution phase; ViT and mT5 stacks scanned '
    'with remat) lowered and compiled from `jax.ShapeDtypeStruct`s for N emulated CPU '
    'devices, mesh [replica, data, mdl] = [1, N/4, 4] (4-way model partitioning), global '
    'batch 4N as in the paper (4096 on 1024 chips: each group of 4 model-parallel chips holds '
    'the 16 examples of its data shard), prompt and target 64 tokens, float32 weights and '
    'optimizer '
    'state, bfloat16 activations (Pax mixed precision). "fsdp": weights (so gradients and '
    'optimizer state) also split over the data axis; "res": the residual stream [B, T, D] '
    "(what a scanned stack keeps per layer for the backward pass) split over 'mdl' too. "
    'Per-device bytes from '
    '`compiled.memory_analysis()`; live = arguments + temps + non-aliased outputs (the state '
    'is donated).',
    '',
    '| model | image | params | mesh | fsdp | res | weights/dev GiB | opt state/dev GiB '
    '| XLA args GiB | XLA temp GiB | live GiB | fits TPU v4 32 GiB | compile |',
    '|---|---|---:|---|---|---|---:|---:|---:|---:|---:|---|---:|',
  ]
  for r in recs:
    lines.append(
      f'| PaLI-{r["size"].upper()} | {r["image_size"]} px | {r["n_params"] / 1e9:.2f}B | '
      f'{r["mesh"]} | {"yes" if r.get("fsdp") else "no"} | '
      f'{"yes" if r.get("shard_residual") else "no"} | '
      f'{_gib(r["params_per_device"])} | {_gib(r["opt_state_per_device"])} | '
      f'{_gib(r["argument"])} | {_gib(r["temp"])} | {_gib(r["peak"])} | '
      f'{"yes" if r["fits_tpu_v4"] else "**no**"} | {r["compile_s"]:.0f} s |'
    )
  ext = memory_plan.fsdp_extrapolation(recs)
  if ext:
    lines += [
      '',
      'Without fsdp every per-device buffer depends only on the model axis (4) and the '
      "examples per data shard (16), so those rows are the paper's [1, 256, 4] mesh as they "
      'stand. '
      'With fsdp the weight-sized buffers shrink with the data axis d: fitting '
      "live(d) = A + W/d to the two compiled points of each model gives, at the paper's "
      'd = 256:',
      '',
      '| model | image | res | A (independent of d) GiB | W (split d ways) GiB | live at d=256 GiB |',
      '|---|---|---|---:|---:|---:|',
    ]
    for e in ext:
      lines.append(
        f'| PaLI-{e["size"].upper()} | {e["image_size"]} px | '
        f'{"yes" if e.get("shard_residual") else "no"} | {_gib(e["A"])} | {_gib(e["W"])} | '
        f'{_gib(e["live"])} |'
      )
  lines.append('')
  return '\n'.join(lines)


def ablation_md(recs: list[dict[str, Any]], peak: float) -> str:
  lines = [
    '## Speed options tried (small train step, each against the library default, interleaved)',
    '',
    'The ratio is the result: each pair ran round-robin in one process, while the absolute '
    "times (and so the MFU columns) moved with this shared machine's load during the section "
    '(compare the train table, taken in a quieter period).',
    '',
    '| change | before | after | after/before time | before MFU | after MFU | '
    'XLA temp before -> after GiB |',
    '|---|---|---|---:|---:|---:|---|',
  ]
  for r in recs:
    b, a = r['before'], r['after']
    mfu = [100 * x['flops_analytic'] / x['step']['median'] / peak for x in (b, a)]
    lines.append(
      f'| {r["change"]} | {_fmt_s(b["step"])} | {_fmt_s(a["step"])} | '
      f'{a["step"]["median"] / b["step"]["median"]:.2f} | {mfu[0]:.0f}% | {mfu[1]:.0f}% | '
      f'{_gib((b.get("memory") or {}).get("temp"))} -> {_gib((a.get("memory") or {}).get("temp"))} |'
    )
  lines.append('')
  return '\n'.join(lines)


def profile_md(prof: dict[str, Any]) -> str:
  from benchmarks import profile

  lines = [
    f"## Where the small train step's time goes ({prof['label']})",
    '',
    'jax profiler trace of the step, XLA CPU thunk times attributed to components through '
    'the HLO `op_name` metadata (`python -m benchmarks.profile`). Thread seconds per step.',
    '',
    profile.format_profile(prof),
    '',
  ]
  return '\n'.join(lines)


# The sections of docs/benchmarks.md that this module does not generate: the start-up
# section (written by benchmarks.startup) and the hand-written analysis. The committed
# file is their only copy, so a regeneration keeps them, from the first of these on.
KEPT_HEADS = ('## Start-up', '## Analysis')


def kept_tail(path: str) -> str:
  """The part of an existing benchmarks.md from its first `KEPT_HEADS` heading on ('' if none)."""
  if not os.path.exists(path):
    return ''
  with open(path) as f:
    lines = f.read().splitlines(keepends=True)
  at = next((i for i, line in enumerate(lines) if line.startswith(KEPT_HEADS)), len(lines))
  return ''.join(lines[at:])


def write_docs(results: dict[str, Any], docs_dir: str) -> str:
  """Writes benchmarks.md (+ the PNG when matplotlib is there); returns the md path."""
  peak = matmul.peak(results.get('matmul', [])) if results.get('matmul') else float('nan')
  parts = [HEADER, machine_md(results.get('machine', {}), results.get('runs'))]
  if results.get('matmul'):
    parts.append(matmul_md(results['matmul']))
  if results.get('train'):
    parts.append(train_md(results['train'], peak))
  if results.get('ablation'):
    parts.append(ablation_md(results['ablation'], peak))
  if results.get('profile'):
    parts.append(profile_md(results['profile']))
  if results.get('decode'):
    parts.append(decode_md(results['decode']))
  if results.get('scaling'):
    os.makedirs(docs_dir, exist_ok=True)
    png = 'benchmarks_resolution.png'
    ok = plot_scaling(results['scaling'], os.path.join(docs_dir, png))
    parts.append(scaling_md(results['scaling'], png if ok else None))
  if results.get('memory_plan'):
    parts.append(memory_md(results['memory_plan']))
  path = os.path.join(docs_dir, 'benchmarks.md')
  parts.append(kept_tail(path))
  os.makedirs(docs_dir, exist_ok=True)
  with open(path, 'w') as f:
    f.write('\n'.join(parts).rstrip() + '\n')
  return path
