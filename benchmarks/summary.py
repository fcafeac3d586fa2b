"""A few lines of console summary of the results JSON."""

from typing import Any

from benchmarks import decode, matmul


def text(results: dict[str, Any]) -> str:
  """Headline figures: matmul limit, step times, MFU, ratios, decode per token."""
  lines = []
  peak = matmul.peak(results['matmul']) if results.get('matmul') else None
  if peak:
    lines.append(f'matmul float32: {peak / 1e9:.0f} GFLOP/s')
  for r in results.get('train', []):
    o, p = r['ours'], r.get('peer')
    med = o['step']['median']
    line = f'train {r["spec"]}: ours {med:.3f} s/step ({o["examples_per_s"]:.2f} ex/s)'
    if peak:
      line += f', MFU {100 * o["flops_analytic"] / med / peak:.0f}%'
    if p:
      line += f'; peer {p["step"]["median"]:.3f} s (ours/peer {med / p["step"]["median"]:.2f})'
    lines.append(line)
  for r in results.get('ablation', []):
    ratio = r['after']['step']['median'] / r['before']['step']['median']
    lines.append(f'change "{r["change"]}": after/before time {ratio:.2f}')
  dec = results.get('decode', [])
  for m in sorted({r['method'] for r in dec}):
    per = [decode.per_token(dec, m, n) for n in sorted({r['steps'] for r in dec if r['steps'] > 1})]
    lines.append(f'decode {m}: per token ' + ', '.join(f'{1e3 * x:.1f} ms' for x in per if x))
  for r in results.get('scaling', []):
    lines.append(
      f'scaling {r["image_size"]} px: {r["step"]["median"]:.2f} s/step, peak RSS '
      f'{r["peak_rss"] / 2**30:.1f} GiB'
    )
  for r in results.get('memory_plan', []):
    lines.append(
      f'memory PaLI-{r["size"]} {r["image_size"]} px: {r["peak"] / 2**30:.1f} GiB/device '
      f'({"fits" if r["fits_tpu_v4"] else "exceeds"} 32 GiB)'
    )
  return '\n'.join(lines)
