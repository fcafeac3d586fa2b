"""Fixtures shared by the mT5 layer tests (parity with HF MT5ForConditionalGeneration).

ref   tests/fixtures/mt5_reference.npz: inputs and HF outputs, as a dict of arrays
tiny  (model, {'params': params}) of the HF directory tests/fixtures/mt5_hf_tiny
"""

import os

import numpy as np
import pytest
from praxis import base_layer

from pali_pax.convert.mt5 import load_mt5, mt5_config_from_hf

FIXTURES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'fixtures')
HF_DIR = os.path.join(FIXTURES, 'mt5_hf_tiny')


@pytest.fixture(scope='module')
def ref():
  return dict(np.load(os.path.join(FIXTURES, 'mt5_reference.npz')))


@pytest.fixture(scope='module')
def tiny():
  cfg = mt5_config_from_hf(HF_DIR)
  return base_layer.instantiate(cfg), {'params': load_mt5(HF_DIR, cfg, progress=False)}
