"""Dataset sources behind :mod:`effscale.data`: each decodes to uint8 arrays, cached once."""
