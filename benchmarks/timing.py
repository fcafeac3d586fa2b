"""Wall-clock timing helpers: median and spread of repeated calls after warm-up."""

import dataclasses
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any


@dataclasses.dataclass
class Timing:
  """Seconds per call over `n` timed repeats (after warm-up).

  Attributes:
    median: median seconds.
    lo: fastest repeat, seconds.
    hi: slowest repeat, seconds.
    n: number of timed repeats.
    samples: every repeat, seconds.
  """

  median: float
  lo: float
  hi: float
  n: int
  samples: list[float]

  @property
  def spread(self) -> float:
    """Half the max-min range relative to the median (0.05 = +-5 %)."""
    return 0.5 * (self.hi - self.lo) / self.median if self.median > 0 else 0.0

  def fmt(self, scale: float = 1.0, unit: str = 's', digits: int = 3) -> str:
    """'1.234 s [1.200-1.300]' with values multiplied by `scale`."""
    m, lo, hi = self.median * scale, self.lo * scale, self.hi * scale
    return f'{m:.{digits}g} {unit} [{lo:.{digits}g}-{hi:.{digits}g}]'

  def to_json(self) -> dict[str, Any]:
    return dataclasses.asdict(self)

  @classmethod
  def from_samples(cls, samples: list[float]) -> 'Timing':
    return cls(statistics.median(samples), min(samples), max(samples), len(samples), samples)


def block(x: Any) -> Any:
  """Waits for every jax array in `x` (other leaves pass through)."""
  import jax

  return jax.block_until_ready(x)


def time_calls(
  fn: Callable[[], Any], repeats: int, warmup: int = 1, label: str = '', sync: Callable = block
) -> Timing:
  """Times `fn()` `repeats` times after `warmup` untimed calls.

  `sync(result)` must wait for the result (default: jax arrays); progress goes
  to stderr as each repeat finishes, since single steps can take seconds.
  """
  for _ in range(warmup):
    sync(fn())
  samples = []
  for i in range(repeats):
    t0 = time.perf_counter()
    sync(fn())
    samples.append(time.perf_counter() - t0)
    if label:
      progress(f'{label}: repeat {i + 1}/{repeats} {samples[-1]:.3f} s')
  return Timing.from_samples(samples)


def progress(msg: str) -> None:
  """One progress line on stderr (stdout stays for the final table)."""
  print(f'[bench] {msg}', file=sys.stderr, flush=True)


def interleave(
  fns: dict[str, Callable[[], Any]],
  repeats: int,
  warmup: int = 1,
  label: str = '',
  syncs: dict[str, Callable] | None = None,
  settle: int = 0,
) -> dict[str, Timing]:
  """Times several functions round-robin: a, b, c, a, b, c, ...

  On a shared machine the load drifts over minutes; alternating calls lets
  every function see the same drift, so their ratio is fair even when the
  absolute times move. `syncs` maps a name to its wait function (default:
  jax's block_until_ready). `settle` untimed calls precede each timed one: the
  first call after another framework's ran pays for the state it left (a
  train step of ours right after the torch peer's took 1.2-1.6x the next one's,
  docs/benchmarks.md "Host memory kept between steps"), which is the switch's cost,
  not the step's.
  """
  syncs = syncs or {}
  for name, fn in fns.items():
    for _ in range(warmup):
      syncs.get(name, block)(fn())
  samples: dict[str, list[float]] = {name: [] for name in fns}
  for i in range(repeats):
    for name, fn in fns.items():
      for _ in range(settle):
        syncs.get(name, block)(fn())
      t0 = time.perf_counter()
      syncs.get(name, block)(fn())
      samples[name].append(time.perf_counter() - t0)
      progress(f'{label}{name}: repeat {i + 1}/{repeats} {samples[name][-1]:.3f} s')
  return {name: Timing.from_samples(s) for name, s in samples.items()}
