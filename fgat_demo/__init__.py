"""The demo world: procedural scenes with ground truth (`world`), the metrics that score a transfer on them
(`metrics`), the training script of the bundled demo model (`train`) and the evaluation (`evaluate`)."""
