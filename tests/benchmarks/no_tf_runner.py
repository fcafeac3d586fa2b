"""The model-only benchmark path in a process where TensorFlow cannot be imported.

    python tests/benchmarks/no_tf_runner.py OUT.json

A GPU image may have a newer jax and no TensorFlow at all. Before anything else is
imported, a meta-path finder makes `tensorflow` (and `tensorflow_*`, `tf_keras`)
unimportable, as on such an image; then the tiny spec's paxml train step (layers, model,
loss, praxis Adam update: `benchmarks.model_step`) runs three times, its KV-cached
greedy decode (`benchmarks.decode`) once, and the accelerator run (`benchmarks.accelerator`,
what a GPU session runs) on the tiny spec. OUT.json gets the losses, the decoded ids, the
accelerator record, and which of TensorFlow, seqio and paxml got loaded (none should).
"""

import importlib.abc
import json
import os
import sys

BLOCKED = ('tensorflow', 'tf_keras')
WATCHED = ('tensorflow', 'seqio', 'paxml', 'tensorflow_text')


class _NoTensorFlow(importlib.abc.MetaPathFinder):
  def find_spec(self, name, path=None, target=None):
    top = name.split('.')[0]
    if top in BLOCKED or top.startswith('tensorflow_'):
      raise ImportError(f'{name} is blocked: this process runs without TensorFlow')
    return None


sys.meta_path.insert(0, _NoTensorFlow())
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

import jax  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks import accelerator, configs, decode, model_step  # noqa: E402


def main(out_path: str) -> None:
  spec = configs.SPECS['tiny']
  step = model_step.build_model_step(spec, learning_rate=1e-2)
  losses = [float(step.run()) for _ in range(3)]
  fns = decode.ours_fns(spec, (3,), methods=('cached',))
  ids = np.asarray(jax.block_until_ready(fns[('ours_cached', 3)]()))
  acc = accelerator.run(['tiny'], 4, 2, 'bfloat16', 2, (1, 3), matmul_n=256)
  with open(out_path, 'w') as f:
    json.dump(
      {
        'losses': losses,
        'ids_shape': list(ids.shape),
        'ids_in_vocab': bool(((ids >= 0) & (ids < spec.vocab)).all()),
        'ids': ids.tolist(),
        'accelerator': acc,
        'loaded': sorted(m for m in sys.modules if m.split('.')[0] in WATCHED),
      },
      f,
    )


if __name__ == '__main__':
  main(sys.argv[1])
