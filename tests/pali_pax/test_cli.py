"""`pali-pax`: errors are one line naming the input, non-zero exit, traceback with --verbose;
every sub-command's --help names its flags; flags are read in both absl forms."""

import json

import pytest

from pali_pax import cli
from pali_pax.cli import common, train


def _run(capsys, *argv):
  """(exit status, stderr lines) of `pali-pax ARGV` run in this process."""
  try:
    code = cli.main(list(argv))
  except SystemExit as e:  # argparse usage errors exit directly
    code = e.code
  lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
  return code, lines


@pytest.mark.parametrize(
  ('argv', 'code', 'match'),
  [
    (['params', 'NoSuchExperiment'], 1, "unknown experiment 'NoSuchExperiment'"),
    (['tasks', 'show', 'no_such_task'], 1, "Unknown task or mixture 'no_such_task'"),
    (['tasks', 'show'], 1, 'needs a task name'),
    (['tasks', 'show', 'pali_synthetic_vqa', '--split', 'nope'], 1, "no split 'nope'"),
    (['demo', '--steps', '0'], 2, "argument --steps: '0' must be >= 1"),
    (['demo', '--steps', 'ten'], 2, "'ten' is not an integer"),
    (['tasks', 'list', '--n', '-1'], 2, "argument --n: '-1' must be >= 1"),
    (['frobnicate'], 2, "invalid choice: 'frobnicate'"),
    (
      ['convert', '--exp', 'x'],
      2,
      'the following arguments are required: --job_dir/--job_log_dir, --mt5',
    ),
    (['eval', '--task', 'x'], 2, 'one of the arguments JOB_DIR --job_dir'),
    (['experiments', '--bogus'], 2, 'unrecognized arguments: --bogus'),
    ([], 2, 'the following arguments are required: command'),
  ],
)
def test_errors_are_one_line_and_non_zero(capsys, argv, code, match):
  got, lines = _run(capsys, *argv)
  assert got == code
  assert len(lines) == 1, lines
  assert lines[0].startswith('pali-pax') and 'error:' in lines[0]
  assert match in lines[0]


def test_verbose_prints_the_traceback(capsys):
  code, lines = _run(capsys, '--verbose', 'params', 'NoSuchExperiment')
  assert code == 1
  assert lines[0] == 'Traceback (most recent call last):'
  assert any('ConfigError' in ln for ln in lines)
  assert lines[-1].startswith("pali-pax: error: unknown experiment 'NoSuchExperiment'")
  # --verbose may also follow the command (except for train, whose flags are paxml's).
  code, lines = _run(capsys, 'params', 'NoSuchExperiment', '-v')
  assert code == 1 and lines[0] == 'Traceback (most recent call last):'


def test_unexpected_errors_say_so_in_one_line():
  line = common.one_line(RuntimeError('boom\nsecond line'))
  assert line == (
    'pali-pax: error: RuntimeError: boom [...] (unexpected; --verbose shows the traceback)'
  )
  assert common.one_line(FileNotFoundError('no such file: x')) == 'pali-pax: error: no such file: x'


HELP_NAMES = {
  'demo': ['--job_dir', '--steps', '--fresh', '--seed', '--no_compilation_cache'],
  'train': ['--exp', '--fdl.ATTR', '--fdl_config', '--job_dir', '--job_log_dir', 'paxml.main'],
  'eval': ['JOB_DIR', '--job_dir', '--task', '--split', '--step', '--out', '--exp'],
  'predict': ['JOB_DIR', '--job_dir', '--image', '--prompt', '--step', '--beam_size', '--exp'],
  'launch-local': ['--processes', '--devices_per_process', '--port', '--timeout', '--grace'],
  'experiments': ['usage: pali-pax experiments'],
  'params': ['name', 'tiny, 3b, 15b, 17b'],
  'tasks': ['{list,show}', '--n', '--split'],
  'convert': ['--exp', '--job_dir', '--mt5', '--vit', '--seed'],
  'pretrain-vit': ['--exp', '--job_dir', '--steps', '--seed'],
  'export': [
    'JOB_DIR',
    '--job_dir',
    '--exp',
    '--step',
    '--mt5_out',
    '--vit_npz',
    '--vit_hf',
    '--saved_model',
    '--quantize',
    '--max_decode_steps',
    '--beam_size',
  ],
  'serve': ['path', '--port', '--host', '--servable', '--batch_sizes', '--quantize'],
  'merge': ['JOB_DIR', '--job_dir', '--step', '--out'],
}


def _help(capsys, *argv):
  with pytest.raises(SystemExit) as e:
    cli.main([*argv, '--help'])
  out = capsys.readouterr()
  assert e.value.code == 0, out.err
  return out.out


def test_every_sub_command_has_help_naming_its_flags(capsys):
  assert sorted(HELP_NAMES) == sorted(cli.COMMANDS)
  top = _help(capsys)
  for command, names in HELP_NAMES.items():
    assert command in top
    text = _help(capsys, command)
    assert text.startswith(f'usage: pali-pax {command}'), text
    missing = [n for n in names if n not in text]
    assert not missing, f'pali-pax {command} --help lacks {missing}:\n{text}'
  # The shared flags are described once, so alike wherever they appear.
  step = {
    c: _help(capsys, c).split('\n  --step STEP')[1].split('\n')[0] for c in ('eval', 'export')
  }
  assert step['eval'] == step['export'] and 'checkpoint step' in step['eval']


def test_flags_are_read_as_absl_writes_them():
  argv = ['--exp=X', '--job_log_dir', '/a', '--host_idx=1', '--job_log_dir=/b']
  assert common.flag_value(argv, 'job_log_dir') == '/b'
  assert common.flag_value(argv, 'host_idx') == '1'
  assert common.flag_value(argv, 'mode') is None
  assert common.flag_value(['--exp', 'Y', '--experiment=Z'], 'exp') == 'Y'
  assert common.flag_value(['--job_dir'], 'job_dir') is None
  found, rest = common.read_flags(
    ['--fdl.A=1', '--mode=train', '--fdl.B', '2', '--eval_on_test'], prefixes=['fdl.']
  )
  assert found == [('fdl.A', '1'), ('fdl.B', '2')]
  assert rest == ['--mode=train', '--eval_on_test']


def test_train_reads_the_job_dir_in_every_spelling():
  for argv in (['--job_log_dir', 'j'], ['--job_log_dir=j'], ['--job_dir', 'j'], ['--job_dir=j']):
    assert train.job_dir_flags(['--exp=X', *argv, '--mode=train']) == (
      'j',
      ['--exp=X', '--mode=train', '--job_log_dir=j'],
    )


@pytest.mark.parametrize('spelling', ['--job_log_dir', '--job_dir'])
def test_train_records_the_job_with_the_job_dir_as_the_next_argument(tmp_path, spelling):
  """`--job_log_dir DIR` (not only `--job_log_dir=DIR`) gets pali_pax.json and checks."""
  job = tmp_path / 'job'
  argv = ['--exp', 'PaliTinySynthetic', '--fdl.SEED', '5', spelling, str(job), '--mode=train']
  paxml_argv = train.prepare([*argv, '--no_compilation_cache'])
  meta = json.loads((job / 'pali_pax.json').read_text())
  assert meta['experiment'] == 'PaliTinySynthetic' and meta['overrides'] == {'SEED': 5}
  assert paxml_argv[1:] == ['--fdl.SEED=5', '--mode=train', f'--job_log_dir={job}']


def test_demo_seed_reaches_paxml_as_the_experiments_data_seed():
  from pali_pax.cli import demo

  cmd, total = demo.training_command('runs/x', 300, seed=7)
  assert total == 300 and '--fdl.SEED=7' in cmd and '--fdl.NUM_TRAIN_STEPS=300' in cmd
  assert not any(a.startswith('--fdl.SEED') for a in demo.training_command('runs/x', None)[0])
