"""Fine-tuning: the settings, the loop on Accelerate, checkpoints, the best evaluation, trackers, the saved folder."""
