"""Config -> ``nn.Module`` and its measurements: configs as frozen data, the base networks
as a registry, blocks, the builder, Eff-UNet, FLOPs counting and checkpoints."""
