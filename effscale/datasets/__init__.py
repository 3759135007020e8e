"""Dataset sources behind :mod:`effscale.datasets.images`: each decodes to uint8 arrays once."""
