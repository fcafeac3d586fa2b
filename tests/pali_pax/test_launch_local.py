"""The launch-local supervisor, on small real child processes (python -c scripts)."""

import io
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from pali_pax import cli, launch_local


def _py(code: str) -> list[str]:
  return [sys.executable, '-c', textwrap.dedent(code)]


def _alive(pid: int) -> bool:
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  # A zombie is dead for our purpose (it only waits for its parent to reap it).
  with open(f'/proc/{pid}/stat') as f:
    return f.read().split(')')[-1].split()[0] != 'Z'


def _gone(pid: int, timeout_s: float = 10.0) -> bool:
  """The process is dead within `timeout_s` (a grandchild is not reaped by us: give it time)."""
  deadline = time.monotonic() + timeout_s
  while _alive(pid):
    if time.monotonic() > deadline:
      return False
    time.sleep(0.05)
  return True


def _sleeper(pid_file) -> list[str]:
  """A child that records its pid and a grandchild's, then sleeps for a minute."""
  return _py(f"""
    import subprocess, sys, time
    grandchild = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])
    open({str(pid_file)!r}, 'w').write(f'{{__import__("os").getpid()}} {{grandchild.pid}}')
    print('sleeping', flush=True)
    time.sleep(60)
  """)


def _wait_for(path, timeout_s=20.0):
  deadline = time.monotonic() + timeout_s
  while not (os.path.exists(path) and open(path).read().strip()):
    assert time.monotonic() < deadline, f'{path} never written'
    time.sleep(0.05)
  return [int(x) for x in open(path).read().split()]


def test_all_succeed_and_lines_are_prefixed():
  out = io.StringIO()
  cmds = [_py(f'print("hello from {i}"); print("bye {i}")') for i in range(3)]
  assert launch_local.supervise(cmds, out=out) == 0
  lines = out.getvalue().splitlines()
  for i in range(3):
    assert f'[{i}] hello from {i}' in lines
    assert f'[{i}] bye {i}' in lines
  # Each process's lines keep their order.
  assert lines.index('[1] hello from 1') < lines.index('[1] bye 1')


def test_one_failure_stops_the_others_promptly_and_propagates_its_status(tmp_path):
  out = io.StringIO()
  pid_files = [tmp_path / f'{i}.pid' for i in range(2)]
  failing = _py(f"""
    import os, sys, time
    while not all(os.path.exists(p) and open(p).read() for p in {[str(p) for p in pid_files]!r}):
      time.sleep(0.05)
    print('failing now', flush=True)
    sys.exit(3)
  """)
  start = time.monotonic()
  status = launch_local.supervise(
    [_sleeper(pid_files[0]), failing, _sleeper(pid_files[1])], out=out, grace_s=5.0
  )
  elapsed = time.monotonic() - start
  assert status == 3
  assert elapsed < 30.0, elapsed  # the sleepers would run 60 s
  assert '[1] failing now' in out.getvalue()
  assert 'process 1 exited with status 3' in out.getvalue()
  for pid_file in pid_files:
    for pid in _wait_for(pid_file):  # the sleeper and its grandchild: no orphans
      assert _gone(pid), pid


def test_sigterm_is_escalated_to_sigkill_after_the_grace_period(tmp_path):
  pid_file = tmp_path / 'stubborn.pid'
  stubborn = _py(f"""
    import os, signal, time
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    open({str(pid_file)!r}, 'w').write(str(os.getpid()))
    time.sleep(60)
  """)
  failing = _py(f"""
    import os, sys, time
    while not os.path.exists({str(pid_file)!r}):
      time.sleep(0.05)
    sys.exit(1)
  """)
  start = time.monotonic()
  assert launch_local.supervise([stubborn, failing], out=io.StringIO(), grace_s=1.0) == 1
  assert time.monotonic() - start < 20.0
  assert _gone(_wait_for(pid_file)[0])


def test_a_child_killed_by_a_signal_reports_128_plus_signal():
  code = 'import os, signal; os.kill(os.getpid(), signal.SIGKILL)'
  assert launch_local.supervise([_py(code)], out=io.StringIO()) == 128 + signal.SIGKILL


def test_total_timeout_stops_everything(tmp_path):
  pid_file = tmp_path / 'a.pid'
  out = io.StringIO()
  start = time.monotonic()
  status = launch_local.supervise([_sleeper(pid_file)], out=out, timeout_s=2.0, grace_s=2.0)
  assert status == launch_local.TIMEOUT_EXIT
  assert time.monotonic() - start < 20.0
  assert 'total timeout' in out.getvalue()
  for pid in _wait_for(pid_file):
    assert _gone(pid)


def test_sigterm_to_the_launcher_stops_all_children(tmp_path):
  """A real `pali-pax launch-local` process (as Ctrl-C / a job scheduler would stop it)."""
  pid_file = tmp_path / 'child.pid'
  script = textwrap.dedent(f"""
    import sys
    from pali_pax import launch_local
    sys.exit(launch_local.supervise([{_sleeper(pid_file)!r}], grace_s=2.0))
  """)
  launcher = subprocess.Popen([sys.executable, '-c', script], stdout=subprocess.PIPE, text=True)
  pids = _wait_for(pid_file)
  launcher.send_signal(signal.SIGTERM)
  assert launcher.wait(timeout=30) == launch_local.INTERRUPT_EXIT
  assert 'interrupted' in launcher.stdout.read()
  for pid in pids:
    assert _gone(pid)


def test_train_commands_carry_paxml_multihost_flags():
  cmds = launch_local.train_commands(2, ['--exp=PaliTinySyntheticSpmd', '--job_log_dir=j'], 1234)
  assert len(cmds) == 2
  for i, cmd in enumerate(cmds):
    assert cmd[1:4] == ['-m', 'pali_pax.cli', 'train']
    assert '--exp=PaliTinySyntheticSpmd' in cmd and '--job_log_dir=j' in cmd
    assert '--multiprocess_gpu' in cmd
    assert '--server_addr=127.0.0.1:1234' in cmd
    assert '--num_hosts=2' in cmd
    assert cmd[-1] == f'--host_idx={i}'
  with pytest.raises(ValueError, match='--processes'):
    launch_local.train_commands(0, [], 1)


def test_process_env_sets_gloo_and_the_device_count():
  env = launch_local.process_env(4, {'XLA_FLAGS': '--foo --xla_force_host_platform_device_count=8'})
  assert env['JAX_CPU_COLLECTIVES_IMPLEMENTATION'] == 'gloo'
  assert env['XLA_FLAGS'].split() == ['--foo', '--xla_force_host_platform_device_count=4']
  with pytest.raises(ValueError, match='--devices_per_process'):
    launch_local.process_env(0)


def test_cli_parses_flags_after_the_double_dash():
  args = cli.build_parser(['launch-local']).parse_args(
    ['launch-local', '--processes', '2', '--port', '99', '--', '--exp=X', '--fdl.A=1']
  )
  assert args.processes == 2 and args.port == 99 and args.devices_per_process == 4
  assert [f for f in args.train_flags if f != '--'] == ['--exp=X', '--fdl.A=1']
