"""Runs a SavedModel with TensorFlow alone (the way TF Serving's users load it).

    python tf_only_runner.py SAVED_MODEL REQUESTS.json OUT.json

REQUESTS.json: {"batches": [[{"image_b64": ..., "prompt": ...}, ...], ...]}; OUT.json gets
{"batches": [{"text": [...], "score": [...]}, ...], "modules": {"jax": bool, "pali_pax": bool}}.
Imports only tensorflow and tensorflow_text (and the standard library). JAX, pali_pax and
the Pax stack are made unimportable first: TF 2.21's tflite utilities import jax when it is
installed (`try: from jax import jit`), so this process would otherwise load it without
using it. The output records whether any of them got loaded anyway.
"""

import base64
import importlib.abc
import json
import sys

BLOCKED = ('jax', 'jaxlib', 'flax', 'praxis', 'paxml', 'pali_pax', 'seqio')


class _Block(importlib.abc.MetaPathFinder):
  def find_spec(self, name, path=None, target=None):
    if name.split('.')[0] in BLOCKED:
      raise ImportError(f'{name} is blocked: this process must run with TensorFlow alone')
    return None


sys.meta_path.insert(0, _Block())

import tensorflow as tf  # noqa: E402
import tensorflow_text  # noqa: E402, F401  (registers the SentencePiece ops before loading)
from tensorflow.compiler.tf2xla.python import xla  # noqa: E402


def main(saved_model: str, requests_path: str, out_path: str) -> None:
  with open(f'{saved_model}/assets.extra/pali_pax_export.json') as f:
    meta = json.load(f)
  # The XlaCallModule check a server does before loading: the module's version must be run.
  assert meta['xla_call_module_version'] <= xla.call_module_maximum_supported_version()
  serve = tf.saved_model.load(saved_model).signatures['serving_default']
  with open(requests_path) as f:
    batches = json.load(f)['batches']
  out = []
  for batch in batches:
    image = tf.constant([base64.b64decode(r['image_b64']) for r in batch], tf.string)
    prompt = tf.constant([r['prompt'] for r in batch], tf.string)
    got = serve(image=image, prompt=prompt)
    out.append(
      {
        'text': [t.decode('utf-8') for t in got['text'].numpy().tolist()],
        'score': [float(s) for s in got['score'].numpy()],
      }
    )
  loaded = sorted(sys.modules)
  modules = {name: any(m.split('.')[0] == name for m in loaded) for name in BLOCKED}
  with open(out_path, 'w') as f:
    json.dump({'batches': out, 'modules': modules}, f)


if __name__ == '__main__':
  main(*sys.argv[1:4])
