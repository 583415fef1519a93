"""`latentsim generate`: bad input exits 2 with a message naming the value, writing nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.cli import build_parser, main
from engine.commands.generate import split_counts
from engine.data.generate import DEFAULT_SPLITS
from engine.systems import SYSTEM_NAMES


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["no_such_system", "--train", "2"], "unknown system 'no_such_system'; valid choices: "),
        (["no_such_system"], "unknown system 'no_such_system'; valid choices: "),
        (["kolmogorov", "--train", "-3"], "n_train=-3 is invalid; valid: an integer in [0, "),
        (
            ["kolmogorov", "--test", "0"],
            "n_train + n_valid + n_test=0 is invalid; valid: at least 1",
        ),
        (["kolmogorov", "--test", "1", "--grid", "15", "16"], "grid=(15, 16) is invalid"),
        (["kolmogorov", "--test", "1", "--frames", "0"], "n_frames=0 is invalid"),
        (["kolmogorov", "--test", "1", "--workers", "0"], "workers=0 is invalid"),
        (["kolmogorov", "--test", "1", "--device", "gpu7"], "device='gpu7' is invalid"),
    ],
)
def test_bad_input_exits_2_and_writes_nothing(tmp_path: Path, capsys, arguments, message) -> None:
    out = tmp_path / "out"
    assert main(["generate", *arguments, "--out", str(out), "--quiet"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("latentsim: error: ") and message in error
    assert not out.exists()


def test_unwritable_out_exits_2(tmp_path: Path, capsys) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert main(["generate", "kolmogorov", "--train", "1", "--out", str(blocker), "--quiet"]) == 2
    assert f"out='{blocker}' is invalid; valid: a writable directory" in capsys.readouterr().err


def test_non_integer_count_is_an_argparse_error(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["generate", "kolmogorov", "--train", "many"])
    assert exit_info.value.code == 2
    assert "invalid int value: 'many'" in capsys.readouterr().err


def test_counts_default_to_the_systems_default_dataset() -> None:
    parser = build_parser()
    default = split_counts(parser.parse_args(["generate", "kolmogorov"]))
    assert default == DEFAULT_SPLITS["kolmogorov"] and sum(default) > 0
    assert split_counts(parser.parse_args(["generate", "kolmogorov", "--test", "3"])) == (0, 0, 3)
    assert set(DEFAULT_SPLITS) == set(SYSTEM_NAMES)
