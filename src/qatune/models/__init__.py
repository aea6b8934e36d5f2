"""Models: loading (embedded default, folders, hub ids), attention kernels, the model card, the saved settings."""
