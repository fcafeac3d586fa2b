"""praxis 1.4 on a jax newer than the project's pin (the GPU image's), for the model-only path.

praxis 1.4.0's `praxis/base_input.py` (imported by `praxis.layers`) does
`from jax.lib import xla_client`; jax 0.10 removed that alias, while the module itself
still ships as `jaxlib.xla_client`. `install()` restores the alias when it is missing,
and does nothing on the pinned jax 0.8.3. It must run before praxis is imported.
Checked with jax 0.10.2, flax 0.12.8, praxis 1.4.0, no TensorFlow (docs/benchmarks.md,
"The GPU run").
"""

import sys


def install() -> bool:
  """Adds `jax.lib.xla_client` if this jax lacks it; returns whether it did."""
  import jax.lib

  if hasattr(jax.lib, 'xla_client'):
    return False
  import jaxlib.xla_client

  jax.lib.xla_client = jaxlib.xla_client
  sys.modules['jax.lib.xla_client'] = jaxlib.xla_client
  return True
