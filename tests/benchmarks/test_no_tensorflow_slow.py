"""The model-only path (layers, model, loss, Adam step, cached decode) runs without TensorFlow.

A GPU image may have no TensorFlow (and a jax too new for paxml): `no_tf_runner.py`
blocks `tensorflow*` imports before anything is imported, trains the tiny spec three
steps on one batch (`benchmarks.model_step`), decodes with the KV cache
(`benchmarks.decode`) and runs `benchmarks.accelerator` (a GPU session's script) on the
tiny spec, in a fresh interpreter.
"""

import json
import math
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow

RUNNER = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'no_tf_runner.py')


def test_train_step_and_cached_decode_without_tensorflow(tmp_path):
  out = tmp_path / 'out.json'
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2')
  proc = subprocess.run(
    [sys.executable, RUNNER, str(out)], env=env, capture_output=True, text=True, timeout=900
  )
  assert proc.returncode == 0, proc.stderr[-3000:]
  rec = json.loads(out.read_text())
  assert rec['loaded'] == []  # neither TensorFlow nor seqio nor paxml got imported
  losses = rec['losses']
  assert all(math.isfinite(x) for x in losses) and losses[2] < losses[0]  # Adam learns
  assert rec['ids_shape'] == [2, 3] and rec['ids_in_vocab']
  acc = rec['accelerator']  # the GPU session's script, on the CPU
  (train,) = acc['train']
  assert train['batch'] == 4 and train['dtype'] == 'bfloat16'
  assert len(train['losses']) == 4 and all(math.isfinite(x) for x in train['losses'])
  rate = train['model_gflop_per_step'] * 1e9 / train['timing']['median']
  assert math.isclose(train['mfu']['measured_matmul'], rate / acc['peaks']['measured_matmul'])
  assert acc['peaks']['datasheet'] is None  # no datasheet peak for a CPU
  assert set(acc['decode'][0]['calls']) == {'1', '3'}
