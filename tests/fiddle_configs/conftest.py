"""Fixtures of the experiment tests.

other_vocab  a second SentencePiece model (150 pieces + 100 sentinels = 250 ids) with
             mT5's special ids: an experiment's VOCAB_PATH that is not the shipped one
"""

import pytest
import sentencepiece as spm


@pytest.fixture(scope='session')
def other_vocab(tmp_path_factory):
  """A second SentencePiece model (150 pieces + 100 sentinels = 250 ids), mT5's special ids."""
  folder = tmp_path_factory.mktemp('spm')
  text = folder / 'text.txt'
  words = [f'{w}{i}' for i in range(400) for w in ('red', 'blue', 'circle')]
  text.write_text('\n'.join([' '.join(words[i : i + 9]) for i in range(0, len(words), 9)]))
  spm.SentencePieceTrainer.train(
    input=str(text),
    model_prefix=str(folder / 'other'),
    vocab_size=150,
    pad_id=0,
    eos_id=1,
    unk_id=2,
    bos_id=-1,
    minloglevel=2,
  )
  return str(folder / 'other.model')
