"""Where the tests find the repository and the committed fixtures (tests/fixtures)."""

import os

TESTS = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(TESTS)
FIXTURES = os.path.join(TESTS, 'fixtures')
MT5_HF = os.path.join(FIXTURES, 'mt5_hf_tiny')  # HF MT5 directory: config.json + safetensors
MT5_REF = os.path.join(FIXTURES, 'mt5_reference.npz')  # inputs and HF outputs of MT5_HF
VIT_NPZ = os.path.join(FIXTURES, 'vit_bigvision_tiny.npz')  # a big_vision ViT checkpoint
VIT_HF = os.path.join(FIXTURES, 'vit_siglip_tiny')  # the same sizes as an HF SigLIP directory
VIT_REF = os.path.join(FIXTURES, 'vit_reference.npz')  # inputs and reference ViT outputs
