"""Fixtures shared by the mT5 layer tests (parity with HF MT5ForConditionalGeneration).

ref   tests/fixtures/mt5_reference.npz: inputs and HF outputs, as a dict of arrays
tiny  (model, {'params': params}) of the HF directory tests/fixtures/mt5_hf_tiny
"""

import numpy as np
import pytest
from praxis import base_layer

from pali_pax.convert.mt5 import load_mt5, mt5_config_from_hf
from tests.paths import MT5_HF as HF_DIR
from tests.paths import MT5_REF


@pytest.fixture(scope='module')
def ref():
  return dict(np.load(MT5_REF))


@pytest.fixture(scope='module')
def tiny():
  cfg = mt5_config_from_hf(HF_DIR)
  return base_layer.instantiate(cfg), {'params': load_mt5(HF_DIR, cfg, progress=False)}
