"""`pali-pax launch-local`: a pod in miniature, N `pali-pax train` processes on this machine.

Each process is one JAX host: JAX's gloo collectives on CPU,
`--xla_force_host_platform_device_count=K` emulated devices, and paxml's own
multi-process flags (`--multiprocess_gpu --server_addr=127.0.0.1:PORT
--num_hosts=N --host_idx=I`, which call `jax.distributed.initialize`). The
supervisor prefixes every output line with `[I]`, and stops every process
(its whole process group: SIGTERM, then SIGKILL after a grace period) as soon
as one exits non-zero, on Ctrl-C / SIGTERM, or when the total timeout runs
out, so nothing is left running and nothing waits forever on a dead peer.
The command line is `pali_pax.cli.launch_local`.

    pali-pax launch-local --processes 2 --devices_per_process 4 -- \\
      --exp=PaliTinySyntheticSpmd --job_dir=/tmp/j --fdl.NUM_TRAIN_STEPS=20
"""

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from typing import TextIO

from pali_pax.core import errors

# Exit status of a run stopped by its total timeout (as coreutils `timeout`).
TIMEOUT_EXIT = 124
# Exit status after Ctrl-C / SIGTERM of the launcher (128 + SIGINT).
INTERRUPT_EXIT = 130


class _Interrupted(Exception):
  """The launcher itself got SIGTERM (handled like Ctrl-C)."""


def free_port() -> int:
  """A TCP port on 127.0.0.1 that nothing listens on right now."""
  with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


def train_commands(
  processes: int, train_flags: Sequence[str], port: int, python: str = sys.executable
) -> list[list[str]]:
  """The `pali-pax train` command line of each process (host_idx 0..processes-1)."""
  if processes < 1:
    raise errors.InputValidationError(f'--processes must be >= 1, got {processes}')
  multi = [
    '--multiprocess_gpu',
    f'--server_addr=127.0.0.1:{port}',
    f'--num_hosts={processes}',
  ]
  return [
    [python, '-m', 'pali_pax.cli', 'train', *train_flags, *multi, f'--host_idx={i}']
    for i in range(processes)
  ]


def process_env(devices_per_process: int, base: dict[str, str] | None = None) -> dict[str, str]:
  """Environment of one host process: gloo CPU collectives and K emulated devices."""
  if devices_per_process < 1:
    raise errors.InputValidationError(
      f'--devices_per_process must be >= 1, got {devices_per_process}'
    )
  env = dict(os.environ if base is None else base)
  env['JAX_CPU_COLLECTIVES_IMPLEMENTATION'] = 'gloo'
  env['JAX_PLATFORMS'] = 'cpu'
  # Keep the user's other XLA flags; ours decides the device count.
  flags = [f for f in env.get('XLA_FLAGS', '').split() if 'host_platform_device_count' not in f]
  env['XLA_FLAGS'] = ' '.join(
    [*flags, f'--xla_force_host_platform_device_count={devices_per_process}']
  )
  env.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
  return env


def _pump(index: int, stream: TextIO, out: TextIO, lock: threading.Lock) -> None:
  """Copies a child's output to `out`, each line prefixed with `[index]`."""
  for line in iter(stream.readline, ''):
    with lock:
      out.write(f'[{index}] {line}' if line.endswith('\n') else f'[{index}] {line}\n')
      out.flush()
  stream.close()


def _stop_all(procs: list[subprocess.Popen], grace_s: float) -> None:
  """SIGTERM to every live process group, SIGKILL to what is left after `grace_s`."""
  for p in procs:
    if p.poll() is None:
      _signal_group(p, signal.SIGTERM)
  deadline = time.monotonic() + grace_s
  for p in procs:
    try:
      p.wait(timeout=max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
      pass
  for p in procs:
    # Also the group of an exited leader: its children (e.g. a compile worker) may live on.
    _signal_group(p, signal.SIGKILL)
    p.wait()


def _signal_group(p: subprocess.Popen, sig: int) -> None:
  try:
    os.killpg(p.pid, sig)
  except ProcessLookupError:
    pass


def _exit_status(returncode: int) -> int:
  """A child's status as a shell reports it (killed by signal S -> 128 + S)."""
  return 128 - returncode if returncode < 0 else returncode


def supervise(
  commands: Sequence[Sequence[str]],
  env: dict[str, str] | None = None,
  timeout_s: float | None = None,
  grace_s: float = 10.0,
  out: TextIO | None = None,
) -> int:
  """Runs `commands` at once, each in its own process group; returns the job's exit status.

  Args:
    commands: one argv per process; process I's output lines are prefixed `[I] `.
    env: environment of every process (default: this one's).
    timeout_s: total wall-clock limit in seconds (None: none); on expiry all stop.
    grace_s: seconds between SIGTERM and SIGKILL when stopping.
    out: where the prefixed lines go (default sys.stdout).

  Returns:
    0 when all exit 0; the status of the first process that failed (the
    others are then stopped); 124 on timeout; 130 on Ctrl-C / SIGTERM.
  """
  out = sys.stdout if out is None else out
  lock = threading.Lock()
  procs: list[subprocess.Popen] = []
  pumps: list[threading.Thread] = []
  previous = signal.getsignal(signal.SIGTERM)
  in_main = threading.current_thread() is threading.main_thread()

  def _on_sigterm(signum: int, frame: object) -> None:
    raise _Interrupted()

  if in_main:
    signal.signal(signal.SIGTERM, _on_sigterm)
  status = 0
  try:
    for i, cmd in enumerate(commands):
      p = subprocess.Popen(
        list(cmd),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        errors='replace',
        start_new_session=True,  # own process group: stopping it reaches its children too
      )
      procs.append(p)
      t = threading.Thread(target=_pump, args=(i, p.stdout, out, lock), daemon=True)
      t.start()
      pumps.append(t)
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    while True:
      codes = [p.poll() for p in procs]
      failed = [(i, c) for i, c in enumerate(codes) if c not in (None, 0)]
      if failed:
        i, code = failed[0]
        status = _exit_status(code)
        _note(out, lock, f'process {i} exited with status {status}; stopping the others')
        break
      if all(c == 0 for c in codes):
        break
      if deadline is not None and time.monotonic() > deadline:
        status = TIMEOUT_EXIT
        _note(out, lock, f'total timeout of {timeout_s:g} s reached; stopping all processes')
        break
      time.sleep(0.05)
  except (KeyboardInterrupt, _Interrupted):
    status = INTERRUPT_EXIT
    _note(out, lock, 'interrupted; stopping all processes')
  finally:
    _stop_all(procs, grace_s)
    for t in pumps:
      t.join(timeout=5.0)
    if in_main:
      signal.signal(signal.SIGTERM, previous)
  return status


def _note(out: TextIO, lock: threading.Lock, message: str) -> None:
  with lock:
    out.write(f'[launch-local] {message}\n')
    out.flush()


def launch_local(
  processes: int,
  train_flags: Sequence[str],
  devices_per_process: int = 4,
  port: int | None = None,
  timeout_s: float | None = None,
  grace_s: float = 10.0,
) -> int:
  """Runs `pali-pax train TRAIN_FLAGS` as `processes` JAX hosts of one job; exit status."""
  port = free_port() if port is None else port
  commands = train_commands(processes, train_flags, port)
  env = process_env(devices_per_process)
  print(
    f'[launch-local] {processes} processes x {devices_per_process} devices, '
    f'coordinator 127.0.0.1:{port}',
    flush=True,
  )
  return supervise(commands, env=env, timeout_s=timeout_s, grace_s=grace_s)
