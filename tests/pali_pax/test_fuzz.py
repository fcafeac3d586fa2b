"""Seeded, bounded fuzz of every input edge: readers, Predictor, CLI, converters.

Each case feeds one malformed input (a mutated annotation / checkpoint file, a
broken array or argument, a bad command line) to the real entry point. Whatever
it does, a failure must be a `pali_pax.errors.PaliPaxError` whose message names
the input: the file, the argument, or the offending value. Inputs that happen to
stay valid must simply work. The cases are drawn from fixed seeds, so a failure
reproduces exactly; each category reports every bad case at once.

    readers     120 mutated COCO / Karpathy / VQAv2 / TextVQA / XM3600 files + 20 TFRecords
    Predictor   120 malformed calls (images, ids, masks, prompts, decoding arguments)
    CLI          70 malformed command lines (one line on stderr, non-zero exit)
    converters   90 mutated HF mT5 / SigLIP / big_vision files
"""

import copy
import io
import json
import os
import shutil
import string

import numpy as np
import pytest
from PIL import Image

from pali_pax import cli, errors
from pali_pax.convert import components, load_vit
from pali_pax.inference import Predictor
from pali_pax.tasks import drop_counts, readers
from pali_pax.tasks import vocab as vocab_lib

SEED = 20261201
FIXTURES = os.path.join(os.path.dirname(os.path.dirname(__file__)), 'fixtures')

# Values a mutation puts anywhere in a JSON document.
JSON_VALUES = [
  None,
  True,
  -1,
  0,
  2**70,
  1.5,
  float('nan'),
  '',
  ' ',
  '../../outside.png',
  '/etc/hostname',
  'gs://bucket/x.png',
  'a\x00b.png',
  '\ud800',
  'é中',
  'x' * 5000,
  [],
  {},
  [1, 'a'],
  {'x': {'y': []}},
]


def _fails(failures, case, exc, names):
  """Records `case` unless `exc` is a PaliPaxError naming one of `names`."""
  if not isinstance(exc, errors.PaliPaxError):
    failures.append(f'{case}: not a project error: {type(exc).__name__}: {str(exc)[:300]}')
  elif not any(n in str(exc) for n in names):
    failures.append(f'{case}: message names none of {names}: {str(exc)[:300]}')


# --------------------------------------------------------------------- readers


def _png(path):
  buf = io.BytesIO()
  Image.new('RGB', (4, 3), (9, 90, 200)).save(buf, 'PNG')
  path.write_bytes(buf.getvalue())


def _reader_bases():
  """name -> (files {file name: document}, build(folder) -> (source, split))."""
  coco = {
    'images': [{'id': 1, 'file_name': 'a.png'}, {'id': 2, 'file_name': 'b.png'}],
    'annotations': [{'image_id': 1, 'caption': 'a cat'}, {'image_id': 2, 'caption': 'a dog'}],
  }
  karpathy = {
    'images': [
      {'filepath': '', 'filename': 'a.png', 'split': 'train', 'cocoid': 1,
       'sentences': [{'raw': 'a cat'}, {'raw': 'cat'}]},
    ]
  }  # fmt: skip
  questions = {
    'data_subtype': 'val2014',
    'questions': [{'image_id': 1, 'question': 'what?', 'question_id': 10}],
  }
  answers = {'annotations': [{'question_id': 10, 'answers': [{'answer': 'cat'}] * 3}]}
  textvqa = {'data': [{'image_id': 'a', 'question': 'what?', 'question_id': 3, 'answers': ['x']}]}
  xm = [{'image/key': 'a', 'en': {'caption': ['a cat']}, 'de': {'caption': ['eine Katze']}}]
  return {
    'coco': ({'ann.json': coco}, lambda d: (readers.coco_captions_source(
      {'train': (f'{d}/ann.json', f'{d}/img')}), 'train')),
    'karpathy': ({'ann.json': karpathy}, lambda d: (readers.coco_captions_source(
      {'train': (f'{d}/ann.json', f'{d}/img')}), 'train')),
    'vqa_questions': ({'q.json': questions, 'a.json': answers}, lambda d: (readers.vqav2_source(
      {'val': (f'{d}/q.json', f'{d}/a.json', f'{d}/img')}, 'COCO_{subtype}_{image_id}.png'),
      'val')),
    'textvqa': ({'ann.json': textvqa}, lambda d: (readers.textvqa_source(
      {'train': (f'{d}/ann.json', f'{d}/img')}, image_ext='.png'), 'train')),
    'xm3600': ({'captions.jsonl': xm}, lambda d: (readers.xm3600_source(
      f'{d}/captions.jsonl', f'{d}/img', image_ext='.png'), 'test')),
  }  # fmt: skip


def _paths(node, prefix=()):
  """Every path (tuple of keys / indices) into a JSON tree, the root included."""
  yield prefix
  items = (
    node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
  )
  for k, v in items:
    yield from _paths(v, (*prefix, k))


def _mutate_tree(doc, rng):
  doc = copy.deepcopy(doc)
  paths = list(_paths(doc))
  path = paths[rng.integers(len(paths))]
  if not path:
    return JSON_VALUES[rng.integers(len(JSON_VALUES))]
  parent = doc
  for k in path[:-1]:
    parent = parent[k]
  if isinstance(parent, dict) and rng.random() < 0.3:
    del parent[path[-1]]
  else:
    parent[path[-1]] = copy.deepcopy(JSON_VALUES[rng.integers(len(JSON_VALUES))])
  return doc


def _serialise(name, doc):
  if name.endswith('.jsonl') and isinstance(doc, list):
    return '\n'.join(json.dumps(row) for row in doc).encode('utf-8', 'surrogatepass')
  return json.dumps(doc).encode('utf-8', 'surrogatepass')


def _mutate_bytes(data, rng):
  kind = rng.integers(6)
  if kind == 0:
    return data[: rng.integers(len(data))]  # truncated
  if kind == 1:
    b = bytearray(data)
    for _ in range(rng.integers(1, 4)):
      b[rng.integers(len(b))] = int(rng.integers(256))  # flipped bytes (often not UTF-8)
    return bytes(b)
  if kind == 2:
    return b''
  if kind == 3:
    return '\ufeff'.encode() + data  # a BOM
  if kind == 4:
    return b'[' * 50_000 + b']' * 50_000  # nesting past the recursion limit
  return data.replace(b'a', 'á'.encode('latin-1'), 1)  # one Latin-1 byte


def test_fuzz_readers(tmp_path):
  rng = np.random.default_rng(SEED)
  bases = _reader_bases()
  failures, messages, ok = [], [], 0
  for i in range(120):
    name = list(bases)[i % len(bases)]
    files, build = bases[name]
    folder = tmp_path / f'r{i:03d}'
    (folder / 'img').mkdir(parents=True)
    for image in ('a.png', 'b.png', 'COCO_val2014_1.png'):
      _png(folder / 'img' / image)
    _png(tmp_path / 'outside.png')
    target = list(files)[rng.integers(len(files))]
    for fname, doc in files.items():
      if fname == target and rng.random() < 0.6:
        data = _serialise(fname, _mutate_tree(doc, rng))
      elif fname == target:
        data = _mutate_bytes(_serialise(fname, doc), rng)
      else:
        data = _serialise(fname, doc)
      (folder / fname).write_bytes(data)
    case = f'readers[{i}] {name} ({target})'
    try:
      source, split = build(str(folder))
      for _ in source.get_dataset(split, shuffle=False).as_numpy_iterator():
        pass
      ok += 1
    except Exception as e:  # noqa: BLE001  (every failure is inspected)
      _fails(failures, case, e, list(files))
      messages.append(str(e))
  assert not failures, '\n'.join(failures)
  # The mutations reach the checks that matter (not only JSON syntax).
  assert ok + len(messages) == 120 and ok >= 5, ok
  for kind in ('outside the data folder', 'not UTF-8', 'not valid JSON', 'should be'):
    assert any(kind in m for m in messages), kind


def test_fuzz_tfrecord_text_is_counted(tmp_path):
  """Random bytes in every text field: invalid UTF-8 examples are dropped and counted exactly."""
  rng = np.random.default_rng(SEED + 1)
  alphabet = [b'a', b' ', 'é'.encode(), '中'.encode(), b'\xff', b'\xc3', b'\x80', b'\x00']
  for i in range(20):
    examples, invalid = [], 0
    for _ in range(8):
      fields = {
        k: b''.join(alphabet[j] for j in rng.integers(len(alphabet), size=rng.integers(0, 6)))
        for k in ('question', 'lang', 'image_id', 'example_id')
      }
      texts = [
        b''.join(alphabet[j] for j in rng.integers(len(alphabet), size=rng.integers(0, 6)))
        for _ in range(rng.integers(0, 3))
      ]
      examples.append({**fields, 'texts': texts, 'image': b''})
      try:
        for v in [*fields.values(), *texts]:
          v.decode('utf-8')
      except UnicodeDecodeError:
        invalid += 1
    path = str(tmp_path / f't{i}.tfrecord')
    readers.write_tfrecord(path, examples)
    counter = f'fuzz_tfrecord_{i}'
    rows = list(readers.tfrecord_source(path, counter=counter).get_dataset('train', False))
    assert len(rows) == 8 - invalid, f'tfrecord[{i}]'
    assert drop_counts.count(counter, 'invalid_utf8') == invalid, f'tfrecord[{i}]'


# ------------------------------------------------------------------- Predictor


@pytest.fixture(scope='module')
def predictor(mt5_hf_2100, vit_npz_tiny8):
  return Predictor.from_components(
    mt5=mt5_hf_2100, vit=vit_npz_tiny8, vocab=vocab_lib.DEFAULT_VOCAB_PATH
  )


def _bad_images(rng, b):
  good = rng.uniform(-1, 1, (b, 32, 32, 3)).astype(np.float32)
  kind = rng.integers(10)
  if kind in (0, 1):
    good[tuple(rng.integers(s) for s in good.shape)] = [np.nan, np.inf][kind]
    return good
  return [
    np.zeros((0, 32, 32, 3), np.float32),
    good[0],
    good[..., :2],
    good[:, :31],
    good.astype(bool),
    good.astype(np.int16),
    good * 3,
    [[[[0.0] * 3]], [[[0.0] * 2]]],
  ][kind - 2]


def _bad_ids(rng, b, vocab_size, decoder=False):
  # All-zero and long rows are malformed prompts only (decoder ids start with 0, any length).
  kinds = [0, 1, 2, 3, 4, 5, 6, 8] if decoder else list(range(10))
  kind = kinds[rng.integers(len(kinds))]
  return [
    rng.uniform(0, 50, (b, 4)),
    np.full((b, 4), np.nan),
    np.zeros((0, 4), np.int32),
    np.zeros((b, 0), np.int32),
    np.full((b, 4), -1 - rng.integers(100)),
    np.full((b, 4), vocab_size + rng.integers(100)),
    np.arange(4),
    np.zeros((b, 4), np.int32),
    np.full((b, 4), 'x'),
    np.full((b, 700), 7),
  ][kind]


def _bad_mask(rng, b):
  return [np.ones((b, 3)), np.full((b, 4), 2), np.full((b, 4), np.nan), np.full((b, 4), 'a')][
    rng.integers(4)
  ]


def _bad_decoding(rng):
  name = ['beam_size', 'max_decode_steps'][rng.integers(2)]
  return name, [0, -2, 2.5, True, '3', None][rng.integers(6)]


def _bad_prompts(rng, b):
  kind = rng.integers(8)
  return [
    'Answer in en: what?',
    [],
    [''] * b,
    [None] * b,
    [b'bytes'] * b,
    ['Generate caption in xx:'] * b,
    ['red ' * 1000] * b,
    ['Answer in en: a?'] * (b + 1),
  ][kind]


def _predictor_case(rng, p):
  """(callable, names a failure must mention) for one malformed call."""
  b = int(rng.integers(1, 3))
  images = rng.uniform(-1, 1, (b, 32, 32, 3)).astype(np.float32)
  ids = np.tile(np.array([[5, 6, 7, 1]]), (b, 1))
  prompts_ok = ['Answer in en: colour?'] * b
  method = ['image_features', 'generate_ids', 'text_logits', 'generate', 'score'][rng.integers(5)]
  if method == 'image_features':
    bad = _bad_images(rng, b)
    return lambda: p.image_features(bad), ['images']
  if method == 'generate_ids':
    what = ['images', 'input_ids', 'input_mask', 'decoding'][rng.integers(4)]
    kw = {'images': images}
    if what == 'images':
      kw['images'] = _bad_images(rng, b)
    elif what == 'input_ids':
      ids = _bad_ids(rng, b, p.vocab_size)
    elif what == 'input_mask':
      kw['input_mask'] = _bad_mask(rng, b)
    else:
      name, value = _bad_decoding(rng)
      kw[name] = value
      what = name
    return lambda: p.generate_ids(ids, **kw), [what, 'input_ids', 'prompt']
  if method == 'text_logits':
    what = ['input_ids', 'decoder ids', 'images'][rng.integers(3)]
    dec = np.zeros((b, 3), np.int32)
    if what == 'input_ids':
      ids = _bad_ids(rng, b, p.vocab_size)
    elif what == 'decoder ids':
      dec = _bad_ids(rng, b, p.vocab_size, decoder=True)
    else:
      images = _bad_images(rng, b)
    return lambda: p.text_logits(ids, dec, images=images), [what, 'prompt']
  what = ['images', 'prompts', 'decoding', 'targets'][rng.integers(4)]
  prompts = _bad_prompts(rng, b) if what == 'prompts' else prompts_ok
  images = _bad_images(rng, b) if what == 'images' else images
  if method == 'generate':
    kw = {'max_decode_steps': 2}
    if what in ('decoding', 'targets'):
      name, value = _bad_decoding(rng)
      kw[name] = value
      what = name
    return lambda: p.generate(images, prompts, **kw), [what, 'prompt', 'images']
  targets = ['x'] * b
  if what in ('decoding', 'targets'):
    targets = [[], 'x', [3] * b, ['x'] * (b + 1)][rng.integers(4)]
    what = 'targets'
  return lambda: p.score(images, prompts, targets), [what, 'prompt', 'images']


def test_fuzz_predictor(predictor):
  rng = np.random.default_rng(SEED + 2)
  failures = []
  for i in range(120):
    call, names = _predictor_case(rng, predictor)
    try:
      call()
      failures.append(f'predictor[{i}]: a malformed call ran')
    except Exception as e:  # noqa: BLE001
      _fails(failures, f'predictor[{i}]', e, names)
  assert not failures, '\n'.join(failures)


# ------------------------------------------------------------------------- CLI


def _word(rng):
  chars = string.ascii_letters + string.digits + '_.:/é中 '
  return 'zz' + ''.join(chars[j] for j in rng.integers(len(chars), size=rng.integers(1, 12)))


def _cli_case(rng, tmp_path):
  """(argv, strings of which the error line must contain one)."""
  w = _word(rng)
  bad_int = ['0', '-3', 'ten', '1.5', ''][rng.integers(5)]
  kind = rng.integers(9)
  return [
    (['params', w], [w]),
    (['tasks', 'show', w], [w]),
    (['tasks', 'show', 'pali_synthetic_vqa', '--split', w], [w]),
    (['demo', '--steps', bad_int], ['--steps']),
    (['tasks', 'list', '--n', bad_int], ['--n']),
    ([w], [w]),
    (['experiments', '--' + w.replace(' ', '')], [w.replace(' ', '')]),
    (['convert', '--exp', w], ['--job_log_dir']),
    (['convert', '--exp', w, '--job_log_dir', str(tmp_path / 'j'), '--mt5', 'x'], [w]),
  ][kind]


def test_fuzz_cli(capsys, tmp_path):
  rng = np.random.default_rng(SEED + 3)
  failures = []
  for i in range(70):
    argv, names = _cli_case(rng, tmp_path)
    try:
      code = cli.main(argv)
    except SystemExit as e:
      code = e.code
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    case = f'cli[{i}] {argv}'
    if code in (0, None):
      failures.append(f'{case}: exit status {code}')
    elif len(lines) != 1 or not lines[0].startswith('pali-pax'):
      failures.append(f'{case}: stderr is not one pali-pax line: {lines[:5]}')
    elif not any(n in lines[0] for n in names):
      failures.append(f'{case}: {lines[0]!r} names none of {names}')
  assert not failures, '\n'.join(failures)


# ------------------------------------------------------------------ converters


def _converter_case(i, rng, tmp_path):
  """(load function, path the error must name) for one mutated checkpoint."""
  kind = ['mt5_config', 'mt5_weights', 'siglip_config', 'siglip_weights', 'bv_npz'][i % 5]
  folder = tmp_path / f'c{i:03d}'
  if kind.startswith('mt5'):
    shutil.copytree(os.path.join(FIXTURES, 'mt5_hf_tiny'), folder)
  elif kind.startswith('siglip'):
    shutil.copytree(os.path.join(FIXTURES, 'vit_siglip_tiny'), folder)
  else:
    folder.mkdir()
    shutil.copy(os.path.join(FIXTURES, 'vit_bigvision_tiny.npz'), folder / 'vit.npz')
  target = (
    folder
    / {'config': 'config.json', 'weights': 'model.safetensors', 'npz': 'vit.npz'}[
      kind.split('_')[-1]
    ]
  )
  data = target.read_bytes()
  if kind.endswith('config') and rng.random() < 0.6:
    data = _serialise('config.json', _mutate_tree(json.loads(data), rng))
  elif kind.endswith('weights') and rng.random() < 0.3:
    data = int(rng.integers(2**40, 2**62)).to_bytes(8, 'little') + data[8:]  # header length
  else:
    data = _mutate_bytes(data, rng)
  target.write_bytes(data)
  if kind.startswith('mt5'):
    return lambda: components.load_components(mt5=str(folder)), [str(folder)]
  vit = str(folder) if kind.startswith('siglip') else str(target)

  def load():
    cfg = components.model_config(os.path.join(FIXTURES, 'mt5_hf_tiny'), vit)
    return load_vit(vit, cfg.vit_tpl)

  return load, [vit]


@pytest.mark.parametrize(
  'i',
  range(90),
)
def test_fuzz_converters(i, tmp_path):
  rng = np.random.default_rng([SEED + 4, i])
  load, names = _converter_case(i, rng, tmp_path)
  failures = []
  try:
    load()
  except Exception as e:  # noqa: BLE001
    _fails(failures, f'converters[{i}]', e, names)
  assert not failures, failures[0]


def test_fuzz_is_seeded():
  """The same seed draws the same cases (what makes a fuzz failure reproducible)."""
  a, b = np.random.default_rng(SEED), np.random.default_rng(SEED)
  doc = {'images': [{'id': 1, 'file_name': 'a.png'}]}
  assert [json.dumps(_mutate_tree(doc, a)) for _ in range(20)] == [
    json.dumps(_mutate_tree(doc, b)) for _ in range(20)
  ]
