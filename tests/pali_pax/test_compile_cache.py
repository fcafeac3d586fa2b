"""pali_pax.compile_cache: a second process loads the compiled program from the cache,
from a folder of its own CPU's instruction set, without XLA's tuning-attribute errors."""

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
  key = compile_cache.host_key(sys.argv[2].split(',')) if len(sys.argv) > 2 else None
  print('DIR', compile_cache.enable(key=key))
jax.jit(lambda x: jnp.tanh(x @ x.T).sum())(jnp.ones((8, 8))).block_until_ready()
print('HITS', events.count('/jax/compilation_cache/cache_hits'))
"""


def _child(mode, cache, *args):
  """(cache hits, cache folder or None, stderr) of one fresh process."""
  env = dict(os.environ, PALI_PAX_CACHE_DIR=str(cache), TF_CPP_MIN_LOG_LEVEL='2')
  out = subprocess.run(
    [sys.executable, '-c', CHILD, mode, *args], env=env, capture_output=True, text=True, timeout=300
  )
  assert out.returncode == 0, out.stderr[-2000:]
  folder = out.stdout.split('DIR ')[1].split('\n')[0] if 'DIR ' in out.stdout else None
  return int(out.stdout.split('HITS')[-1]), folder, out.stderr


def test_cold_run_writes_warm_run_hits_off_does_neither(tmp_path):
  cache = tmp_path / 'cache'
  assert _child('off', cache)[0] == 0 and not cache.exists()
  hits, folder, _ = _child('on', cache)  # cold: compiles and writes
  assert hits == 0 and folder == str(cache / compile_cache.host_key())
  assert os.listdir(folder)
  hits, _, stderr = _child('on', cache)  # warm: loaded from disk
  assert hits >= 1
  # On AVX-512 hosts XLA logged 2 such errors per loaded program (module docstring).
  assert 'cpu_aot_loader' not in stderr, stderr[-2000:]


def test_another_cpu_feature_key_gets_a_fresh_cache(tmp_path):
  cache = tmp_path / 'cache'
  avx512 = 'avx,avx2,avx512f,fma,sse4_2'
  hits, first, _ = _child('on', cache, avx512)
  assert hits == 0
  hits, again, _ = _child('on', cache, 'sse4_2,avx512f,avx2,fma,avx')  # same set, other order
  assert again == first and hits >= 1
  hits, other, _ = _child('on', cache, 'avx,avx2,fma,sse4_2')  # an AVX2-only host
  assert other != first and hits == 0
  assert sorted(os.listdir(cache)) == sorted([os.path.basename(first), os.path.basename(other)])


def test_host_key_reads_isa_flags_not_mitigations(tmp_path):
  info = tmp_path / 'cpuinfo'
  info.write_text(
    'processor\t: 0\nflags\t\t: fpu sse4_2 avx2 avx512f md_clear ibrs hypervisor\n'
    'processor\t: 1\nflags\t\t: fpu sse4_2 avx2 avx512f md_clear ibrs hypervisor\n'
  )
  assert compile_cache.cpu_flags(str(info)) == ['avx2', 'avx512f', 'fpu', 'sse4_2']
  assert compile_cache.cpu_flags(str(tmp_path / 'missing')) == []
  key = compile_cache.host_key(['avx2', 'fpu'])
  assert key == compile_cache.host_key(['fpu', 'avx2', 'avx2'])
  assert key != compile_cache.host_key(['avx2', 'avx512f', 'fpu'])
  assert compile_cache.host_key().startswith(os.uname().machine + '-')


def test_only_tuning_attribute_errors_are_dropped():
  head = b'E1206 07:22:38.750994    4310 cpu_aot_loader.cc:210] Loading XLA:CPU AOT result. '
  tail = b' is not  supported on the host machine. ... SIGILL.\n'
  assert compile_cache.is_tuning_noise(head + b'Target machine feature +prefer-no-scatter' + tail)
  assert compile_cache.is_tuning_noise(head + b'Target machine feature +prefer-no-gather' + tail)
  assert not compile_cache.is_tuning_noise(head + b'Target machine feature +avx512f' + tail)
  assert not compile_cache.is_tuning_noise(b'E0000 other.cc:1] +prefer-no-scatter\n')


def test_flag_handling(monkeypatch, tmp_path):
  assert train.no_cache_flag(['--exp=X', '--no_compilation_cache', '--y']) == (
    True,
    ['--exp=X', '--y'],
  )
  assert train.no_cache_flag(['--exp=X']) == (False, ['--exp=X'])
  monkeypatch.setenv('PALI_PAX_CACHE_DIR', str(tmp_path))
  assert compile_cache.cache_root() == str(tmp_path)
  assert compile_cache.cache_dir() == os.path.join(tmp_path, compile_cache.host_key())
  monkeypatch.delenv('PALI_PAX_CACHE_DIR')
  assert compile_cache.cache_root() == os.path.expanduser('~/.cache/pali_pax/jax')


def test_num_hosts_reads_paxml_flag_in_both_forms():
  assert train.num_hosts(['--exp=X']) == 1
  assert train.num_hosts(['--num_hosts=2', '--host_idx=1']) == 2
  assert train.num_hosts(['--num_hosts', '4', '--exp=X']) == 4
  assert train.num_hosts(['--num_hosts=1', '--num_hosts=3']) == 3  # absl: last wins
  assert train.num_hosts(['--num_hosts=two']) == 1
