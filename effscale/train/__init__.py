"""One training run: the recipe and the proxy trainer, the proxy convention, out-of-memory
handling, and the segmentation trainer for Eff-UNet."""
