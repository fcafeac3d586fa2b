"""pali_pax.compile_cache: a second process loads the compiled program from the cache."""

import os
import subprocess
import sys

from pali_pax import compile_cache
from pali_pax.cli import train

CHILD = """
import sys
import jax, jax.numpy as jnp
from pali_pax import compile_cache
events = []
jax.monitoring.register_event_listener(lambda name, **kw: events.append(name))
if sys.argv[1] == 'on':
  compile_cache.enable()
jax.jit(lambda x: jnp.tanh(x @ x.T).sum())(jnp.ones((8, 8))).block_until_ready()
print('HITS', events.count('/jax/compilation_cache/cache_hits'))
"""


def _child(mode, cache):
  env = dict(os.environ, PALI_PAX_CACHE_DIR=str(cache), TF_CPP_MIN_LOG_LEVEL='2')
  out = subprocess.run(
    [sys.executable, '-c', CHILD, mode], env=env, capture_output=True, text=True, timeout=300
  )
  assert out.returncode == 0, out.stderr[-2000:]
  return int(out.stdout.split('HITS')[-1])


def test_cold_run_writes_warm_run_hits_off_does_neither(tmp_path):
  cache = tmp_path / 'cache'
  assert _child('off', cache) == 0 and not cache.exists()
  assert _child('on', cache) == 0  # cold: compiles and writes
  assert os.listdir(cache)
  assert _child('on', cache) >= 1  # warm: loaded from disk


def test_flag_handling(monkeypatch, tmp_path):
  assert train.no_cache_flag(['--exp=X', '--no_compilation_cache', '--y']) == (
    True,
    ['--exp=X', '--y'],
  )
  assert train.no_cache_flag(['--exp=X']) == (False, ['--exp=X'])
  monkeypatch.setenv('PALI_PAX_CACHE_DIR', str(tmp_path))
  assert compile_cache.cache_dir() == str(tmp_path)
  monkeypatch.delenv('PALI_PAX_CACHE_DIR')
  assert compile_cache.cache_dir() == os.path.expanduser('~/.cache/pali_pax/jax')


def test_num_hosts_reads_paxml_flag_in_both_forms():
  assert train.num_hosts(['--exp=X']) == 1
  assert train.num_hosts(['--num_hosts=2', '--host_idx=1']) == 2
  assert train.num_hosts(['--num_hosts', '4', '--exp=X']) == 4
  assert train.num_hosts(['--num_hosts=1', '--num_hosts=3']) == 3  # absl: last wins
  assert train.num_hosts(['--num_hosts=two']) == 1
