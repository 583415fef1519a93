"""Model files: round trip, refusals with clear messages, and no pickle anywhere."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import pickle
import struct

import pytest
import torch
from ae_specs import boundaries, make_spec

from engine.autoencoder import Autoencoder, AutoencoderConfig, autoencoder_config
from engine.errors import DataFormatError, ParameterError
from engine.model_files import (
    FORMAT_VERSION,
    copy_model,
    load_autoencoder,
    load_model_card,
    load_state_dict,
    model_paths,
    save_autoencoder,
    save_model,
)
from engine.preprocessing import Preprocessing

KOLMOGOROV = ("vorticity", "velocity_x", "velocity_y")
TINY = {"widths": (4, 4, 4, 4, 8), "blocks_per_level": 1}


def _saved(tmp_path, rate: int = 192, name: str = "kolmogorov_192"):
    spec = make_spec("kolmogorov")
    config = autoencoder_config(spec, rate, boundaries=boundaries("kolmogorov"))
    config = AutoencoderConfig.from_dict({**config.to_dict(), **TINY})
    torch.manual_seed(0)
    model = Autoencoder(config)
    prep = Preprocessing(KOLMOGOROV, (0.0, 0.1, -0.1), (3.0, 1.0, 1.5))
    path = save_autoencoder(
        tmp_path,
        name,
        model,
        prep,
        system="kolmogorov",
        grid=(64, 64),
        rate=rate,
        training={"steps": 10, "loss": "vmse"},
    )
    return path, model, prep


def test_round_trip(tmp_path):
    path, model, prep = _saved(tmp_path)
    assert path == tmp_path / "kolmogorov_192.json"
    loaded, loaded_prep, card = load_autoencoder(path, system="kolmogorov", device="cpu")
    assert not loaded.training  # ready for inference
    assert loaded.config == model.config
    assert loaded_prep == prep
    for key, value in model.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[key], value, rtol=0, atol=0)
    x = torch.randn(1, 3, 64, 64)
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)
    assert card["kind"] == "autoencoder" and card["system"] == "kolmogorov"
    assert card["rate"] == 192 and card["latent_shape"] == [4, 4, 4]
    assert card["format_version"] == FORMAT_VERSION
    assert card["training"] == {"steps": 10, "loss": "vmse"}
    assert card["preprocessing"]["mean"] == [0.0, 0.1, -0.1]
    weights = tmp_path / "kolmogorov_192.safetensors"
    assert card["weights"]["sha256"] == hashlib.sha256(weights.read_bytes()).hexdigest()
    # The stem, the card or the weights file all name the same model.
    for alias in (tmp_path / "kolmogorov_192", weights):
        assert load_model_card(alias) == card
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "kolmogorov_192.json",
        "kolmogorov_192.safetensors",  # no temporaries left behind
    ]


def test_weights_are_plain_safetensors_and_never_unpickled(tmp_path, monkeypatch):
    path, model, _ = _saved(tmp_path)
    raw = model_paths(path)[0].read_bytes()
    (header_size,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + header_size])
    assert set(header) - {"__metadata__"} == set(model.state_dict())
    assert header["encoder.layers.0.weight"]["dtype"] == "F32"

    def refuse(*args, **kwargs):
        raise AssertionError("pickle-based loading was used")

    monkeypatch.setattr(torch, "load", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    load_autoencoder(path, device="cpu")


def test_another_systems_model_is_refused_naming_both(tmp_path):
    path, _, _ = _saved(tmp_path)
    with pytest.raises(DataFormatError) as info:
        load_autoencoder(path, system="euler_quadrants")
    assert "'kolmogorov'" in str(info.value) and "'euler_quadrants'" in str(info.value)
    with pytest.raises(DataFormatError, match="euler_quadrants"):
        load_autoencoder(path, system=make_spec("euler_quadrants"))


def test_spec_with_other_channels_is_refused(tmp_path):
    path, _, _ = _saved(tmp_path)
    spec = make_spec("kolmogorov")
    load_autoencoder(path, system=spec, device="cpu")
    with pytest.raises(DataFormatError, match="channels"):
        load_autoencoder(path, system=dataclasses.replace(spec, fields=spec.fields[:1]))


@pytest.mark.parametrize(
    ("expected", "words"),
    [
        ({"kind": "emulator"}, ("kind", "autoencoder", "emulator")),
        ({"rate": 48}, ("rate", "192", "48")),
        ({"latent_shape": (16, 4, 4)}, ("latent_shape", "[4, 4, 4]", "[16, 4, 4]")),
        ({"grid": [128, 128]}, ("grid", "[64, 64]")),
        ({"step": 5}, ("lacks", "step")),
    ],
)
def test_expectations_are_checked(tmp_path, expected, words):
    path, _, _ = _saved(tmp_path)
    tensors, card = load_state_dict(path, {"kind": "autoencoder", "latent_shape": (4, 4, 4)})
    assert card["rate"] == 192 and tensors
    with pytest.raises(DataFormatError) as info:
        load_state_dict(path, expected)
    for word in words:
        assert word in str(info.value)


def test_modified_weights_fail_the_hash(tmp_path):
    path, _, _ = _saved(tmp_path)
    weights = model_paths(path)[0]
    raw = bytearray(weights.read_bytes())
    raw[-1] ^= 0xFF
    weights.write_bytes(bytes(raw))
    with pytest.raises(DataFormatError, match="SHA-256"):
        load_autoencoder(path)


def test_corrupt_or_missing_files(tmp_path):
    with pytest.raises(DataFormatError, match="no model card"):
        load_autoencoder(tmp_path / "absent")
    path, _, _ = _saved(tmp_path)
    weights = model_paths(path)[0]
    # Garbage weights with a card that matches them: the hash passes, the format does not.
    garbage = b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all"
    weights.write_bytes(garbage)
    card = json.loads(path.read_text())
    card["weights"]["sha256"] = hashlib.sha256(garbage).hexdigest()
    path.write_text(json.dumps(card))
    with pytest.raises(DataFormatError, match="not a valid safetensors"):
        load_autoencoder(path)
    weights.unlink()
    with pytest.raises(DataFormatError, match="weights file is missing"):
        load_autoencoder(path)
    path.write_text('{"format": "latentsim-model", "format_')
    with pytest.raises(DataFormatError, match="unreadable model card"):
        load_model_card(path)
    path.write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(DataFormatError, match="not a latentsim-model card"):
        load_model_card(path)
    path.write_text(json.dumps({**card, "format_version": FORMAT_VERSION + 1}))
    with pytest.raises(DataFormatError, match="format_version"):
        load_model_card(path)


def test_weights_that_do_not_fit_the_config(tmp_path):
    path, model, _ = _saved(tmp_path)
    card = load_model_card(path)
    card["config"]["widths"] = [4, 4, 4, 4, 16]  # the card now describes a wider model
    del card["weights"], card["format"], card["format_version"]
    save_model(tmp_path, "tampered", model, card)
    with pytest.raises(DataFormatError, match="do not fit"):
        load_autoencoder(tmp_path / "tampered")
    card["config"]["widths"] = [4, -4]
    save_model(tmp_path, "invalid", model, card)
    with pytest.raises(DataFormatError, match="invalid autoencoder card"):
        load_autoencoder(tmp_path / "invalid")


def test_save_refuses_bad_input(tmp_path):
    model = Autoencoder(AutoencoderConfig(3, 4, **TINY))
    card = {"kind": "autoencoder", "system": "kolmogorov"}
    with pytest.raises(ParameterError, match="model name"):
        save_model(tmp_path, "../escape", model, card)
    with pytest.raises(ParameterError, match="system"):
        save_model(tmp_path, "ok", model, {"kind": "autoencoder"})
    with pytest.raises(ParameterError, match="weights"):
        save_model(tmp_path, "ok", model, {**card, "weights": {}})
    with pytest.raises(ParameterError, match="JSON"):
        save_model(tmp_path, "ok", model, {**card, "rate": float("nan")})
    prep = Preprocessing(KOLMOGOROV, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
    with pytest.raises(ParameterError, match="rate=48"):  # 4 latent channels give 192
        save_autoencoder(tmp_path, "ok", model, prep, system="kolmogorov", grid=(64, 64), rate=48)
    assert list(tmp_path.iterdir()) == []


def test_half_precision_copy_loads_as_float32_within_rounding(tmp_path):
    path, model, _ = _saved(tmp_path)
    half = copy_model(
        path,
        tmp_path / "half" / "kolmogorov_192",
        storage_dtype="float16",
        extra={"note": "shipped"},
    )
    card = load_model_card(half)
    assert card["weights"]["dtype"] == "float16" and card["note"] == "shipped"
    assert card["weights"]["bytes"] < 0.6 * load_model_card(path)["weights"]["bytes"]
    loaded, _, _ = load_autoencoder(half, system="kolmogorov", device="cpu")
    for key, value in model.state_dict().items():
        got = loaded.state_dict()[key]
        assert got.dtype == value.dtype
        # float16 keeps 11 significant bits: relative rounding error <= 2**-11
        torch.testing.assert_close(got, value, rtol=2**-11, atol=1e-7)


def test_unknown_storage_dtypes_are_refused(tmp_path):
    path, _, _ = _saved(tmp_path)
    with pytest.raises(ParameterError, match="storage_dtype='int8'"):
        copy_model(path, tmp_path / "x", storage_dtype="int8")
    card = json.loads(path.read_text())
    card["weights"]["dtype"] = "bfloat12"
    path.write_text(json.dumps(card))
    with pytest.raises(DataFormatError, match="weights dtype 'bfloat12'"):
        load_state_dict(path)
