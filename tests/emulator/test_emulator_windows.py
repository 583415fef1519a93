"""Window data source: exact windows, stride, uniform coverage through the trainer's
sampler, and argument checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.emulator import WindowSource
from engine.errors import ParameterError
from engine.training import EpochSampler


def _data(count=3, frames=7):
    # Value = 1000·trajectory + frame, so a window says where it came from.
    values = 1000 * torch.arange(count)[:, None] + torch.arange(frames)[None]
    trajectories = values[:, :, None, None, None].float().expand(-1, -1, 2, 4, 2).clone()
    labels = torch.arange(count)[:, None].float().repeat(1, 3)
    return trajectories, labels


def test_windows_are_consecutive_frames_with_their_labels():
    trajectories, labels = _data()
    source = WindowSource(trajectories, labels, window=5)
    assert len(source) == 3 * 3  # 7 - 5 + 1 starts per trajectory
    batch = source.batch(torch.tensor([0, 4, 8]), torch.Generator())
    assert batch["window"].shape == (3, 5, 2, 4, 2) and batch["label"].shape == (3, 3)
    firsts = batch["window"][:, :, 0, 0, 0]
    expected = torch.tensor(
        [[0, 1, 2, 3, 4], [1001, 1002, 1003, 1004, 1005], [2002, 2003, 2004, 2005, 2006]]
    )
    torch.testing.assert_close(firsts, expected.float())
    torch.testing.assert_close(batch["label"][:, 0], torch.tensor([0.0, 1.0, 2.0]))


def test_stride_skips_frames_but_keeps_every_start():
    trajectories, labels = _data(count=1, frames=10)
    source = WindowSource(trajectories.numpy(), labels.numpy(), window=3, stride=2)
    assert len(source) == 10 - 4  # starts 0..5: a window spans 5 frames
    firsts = source.batch(torch.arange(len(source)), torch.Generator())["window"][:, :, 0, 0, 0]
    expected = torch.arange(6)[:, None] + torch.tensor([0, 2, 4])
    torch.testing.assert_close(firsts, expected.float())


def test_an_epoch_visits_every_window_once_in_a_seeded_order():
    trajectories, labels = _data(count=4, frames=9)
    source = WindowSource(trajectories, labels, window=5)
    visited = []
    sampler = EpochSampler(len(source), batch_size=4, seed=11)
    for _ in range(len(source) // 4):
        visited += source.batch(sampler.next_indices(), torch.Generator())["window"][
            :, 0, 0, 0, 0
        ].tolist()
    assert sorted(visited) == sorted(1000.0 * t + s for t in range(4) for s in range(5))
    again = EpochSampler(len(source), batch_size=4, seed=11)
    replay = source.batch(again.next_indices(), torch.Generator())["window"][:, 0, 0, 0, 0]
    assert replay.tolist() == visited[:4]


def test_bad_arguments():
    trajectories, labels = _data()
    with pytest.raises(ParameterError, match="window"):
        WindowSource(trajectories, labels, window=8)  # longer than the 7 frames
    with pytest.raises(ParameterError, match="window"):
        WindowSource(trajectories, labels, window=3, stride=4)  # spans 9 frames
    with pytest.raises(ParameterError, match="stride"):
        WindowSource(trajectories, labels, window=3, stride=0)
    with pytest.raises(ParameterError, match="labels"):
        WindowSource(trajectories, labels[:2], window=3)
    with pytest.raises(ParameterError, match="trajectories"):
        WindowSource(trajectories[:, :, 0], labels, window=3)
    with pytest.raises(ParameterError, match="trajectories"):
        WindowSource(np.zeros((3, 7, 2, 4, 2), dtype=np.int64), labels, window=3)
