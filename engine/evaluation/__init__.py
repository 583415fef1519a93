"""Evaluation of the zoo's emulators on held-out test trajectories (`latentsim evaluate`).

- testset: which test trajectories, their conditions and truth (shared with the model
  cards' test metrics in engine.emulator.training);
- buckets: short / mid / long lead-time buckets, fixed by the horizon alone;
- runner: rollouts and scores per model, the autoencoder floor, persistence, card checks;
- findings: the paper's four findings checked against the measured numbers;
- report: JSON and the Markdown tables in the paper's layout;
- figures: VRMSE and spread-skill against lead time.

This package's __init__ imports nothing: engine.emulator.training imports `testset`, and
`runner` imports engine.emulator.training, so an eager import here would be circular.
"""
