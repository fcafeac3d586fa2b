"""pali_pax: PaLI (ViT + mT5, image-and-text to text) for Praxis / PaxML."""

from pali_pax import jax_compat as _jax_compat  # noqa: F401  (before praxis)

__version__ = '0.1.0'
