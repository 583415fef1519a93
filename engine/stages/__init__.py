"""Stages: each trains or evaluates one kind of model end to end, above the model packages.

- autoencoder: `train_autoencoder`, `evaluate_on_split` (train-ae, evaluate-ae);
- emulator: `train_emulator` (train-emulator), in latent or pixel space;
- heldout: the held-out protocol, shared by the model cards' test metrics and
  `latentsim evaluate`; testset: which test trajectories it uses;
- common: recipes, the dataset's location and what every card records of its training.

The CLI (engine/commands) and the zoo (engine/zoo/build.py) call these functions with
typed arguments; the model packages below (autoencoder, emulator, diffusion, systems)
know nothing of data sets, training runs or evaluation.
"""
