"""pali_pax: PaLI (ViT + mT5, image-and-text to text) for Praxis / PaxML."""

__version__ = '0.1.0'
