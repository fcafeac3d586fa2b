"""The jax / NumPy shims are applied only where praxis / paxml need them, and they work."""

import os
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.slow

# A fresh interpreter: this test process has long imported everything.
SCRIPT = textwrap.dedent(
  """
    import jax, jax.numpy as jnp, numpy as np

    def accepts_newshape():
      try:
        return jnp.reshape(jnp.arange(6), newshape=(2, 3)).shape == (2, 3)
      except TypeError:
        return False

    def state():
      return hasattr(jax, 'tree_map'), accepts_newshape(), hasattr(np, 'unicode_')

    import pali_pax, pali_pax.core.errors
    assert state() == (False, False, False), state()
    import pali_pax.layers
    assert state() == (True, False, False), state()
    assert jax.tree_map(lambda x: x + 1, {'a': 1}) == {'a': 2}
    import pali_pax.model
    from pali_pax.core import jax_compat
    assert state() == (True, True, False), state()
    assert jnp.reshape(jnp.arange(6), (3, 2)).shape == (3, 2)
    reshape = jnp.reshape
    jax_compat.allow_reshape_newshape()  # idempotent: not wrapped twice
    assert jnp.reshape is reshape
    import pali_pax.fiddle_configs.experiment_base
    assert state() == (True, True, True), state()
    assert np.issubdtype(np.array(['x']).dtype, np.unicode_)
    print('OK')
  """
)


def test_shims_are_confined_to_their_users():
  env = {**os.environ, 'TF_CPP_MIN_LOG_LEVEL': '2', 'JAX_PLATFORMS': 'cpu'}
  out = subprocess.run(
    [sys.executable, '-c', SCRIPT], capture_output=True, text=True, env=env, timeout=300
  )
  assert out.returncode == 0 and out.stdout.strip().endswith('OK'), out.stderr[-3000:]
