"""pali_pax: PaLI (ViT + mT5, image-and-text to text) for Praxis / PaxML."""

from pali_pax.core import fiddle_compat

__version__ = '0.1.0'

# Before any praxis / paxml import: fiddle's lambda source lookup took ~half of every
# start-up (`pali_pax.core.fiddle_compat`). Standard library only until fiddle loads.
fiddle_compat.install()
