"""`--resume` continues only the run its directory was started with
(engine/commands/run_record.py)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from engine.commands.run_record import RUN_RECORD, claim_run_dir, run_record
from engine.errors import DataFormatError


def _args(**overrides) -> argparse.Namespace:
    values = {"system": "kolmogorov", "rate": 48.0, "kind": "diffusion", "prediction": None}
    values |= {"resume": True, "run_dir": "somewhere", "data": "data", "quiet": True}
    return argparse.Namespace(**(values | overrides))


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    metadata = tmp_path / "data" / "kolmogorov.yaml"
    metadata.parent.mkdir()
    metadata.write_text("seeds: 0-99\n")
    autoencoder = tmp_path / "ae"
    (tmp_path / "ae.safetensors").write_bytes(b"weights one")
    run = tmp_path / "run"
    return {"metadata": metadata, "autoencoder": autoencoder, "run": run}


def _start(files: dict[str, Path], args: argparse.Namespace) -> dict:
    record = run_record(args, files["metadata"], files["autoencoder"])
    claim_run_dir(files["run"], record, resume=False)
    (files["run"] / "checkpoints" / "step_00000250").mkdir(parents=True)  # it trained
    return record


def test_the_same_run_resumes_and_where_it_writes_does_not_matter(files) -> None:
    _start(files, _args(resume=False))
    moved = _args(run_dir="elsewhere", data="/mnt/data", quiet=False)
    claim_run_dir(
        files["run"], run_record(moved, files["metadata"], files["autoencoder"]), resume=True
    )


def _other_prediction(files: dict[str, Path]) -> argparse.Namespace:
    return _args(prediction="data")


def _other_dataset(files: dict[str, Path]) -> argparse.Namespace:
    files["metadata"].write_text("seeds: 0-9\n")
    return _args()


def _other_autoencoder(files: dict[str, Path]) -> argparse.Namespace:
    (files["autoencoder"].parent / "ae.safetensors").write_bytes(b"weights two")
    return _args()


@pytest.mark.parametrize(
    ("change", "says"),
    [
        (_other_prediction, "--prediction None then, 'data' now"),
        (_other_dataset, "another dataset"),
        (_other_autoencoder, "another autoencoder"),
    ],
)
def test_a_resume_with_other_settings_or_data_is_refused(files, change, says) -> None:
    _start(files, _args(resume=False))
    args = change(files)
    record = run_record(args, files["metadata"], files["autoencoder"])
    with pytest.raises(DataFormatError, match="would not continue it") as refused:
        claim_run_dir(files["run"], record, resume=True)
    assert says in str(refused.value) and str(files["run"]) in str(refused.value)


def test_a_refused_start_keeps_the_record_and_an_old_run_is_adopted(files) -> None:
    first = _start(files, _args(resume=False))
    other = run_record(_args(prediction="data"), files["metadata"], files["autoencoder"])
    claim_run_dir(files["run"], other, resume=False)  # the trainer refuses this start
    assert json.loads((files["run"] / RUN_RECORD).read_text()) == first
    (files["run"] / RUN_RECORD).unlink()  # a run from before records existed
    claim_run_dir(files["run"], other, resume=True)
    assert json.loads((files["run"] / RUN_RECORD).read_text()) == other


def test_an_unreadable_record_is_named(files) -> None:
    _start(files, _args(resume=False))
    (files["run"] / RUN_RECORD).write_text("[1, 2")
    record = run_record(_args(), files["metadata"], files["autoencoder"])
    with pytest.raises(DataFormatError, match=r"unreadable run record .*delete it to resume"):
        claim_run_dir(files["run"], record, resume=True)
