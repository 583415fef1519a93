"""Evaluation of the zoo's emulators on held-out test trajectories (`latentsim evaluate`).

The held-out protocol itself (which test trajectories, how rollouts are started and
scored) is engine/stages/heldout.py, shared with the model cards' test metrics; this
package applies it to every model of the zoo and reports:

- settings: the protocol's settings, checked before anything runs;
- selection: which zoo models are measured, and why the others are missing;
- buckets: short / mid / long lead-time buckets, fixed by the horizon alone;
- summary: per-trajectory scores per lead and per bucket;
- runner: rollouts and scores per model, the autoencoder floor, persistence, card checks;
- cache: measured records reused while weights, data and code are unchanged;
- shift: the test trajectories re-run by the solver out of the training range;
- findings: the paper's findings checked against the measured numbers;
- report: JSON and the Markdown tables in the paper's layout;
- figures: VRMSE and spread-skill against lead time;
- reach: ensemble spread by how far a latent's receptive field reaches.
"""
