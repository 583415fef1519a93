"""`latentsim evaluate` end to end on the tiny zoo, checked against numbers computed here
independently (numpy VRMSE of reconstructions, persistence and a re-run rollout)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import scipy.fft
import torch
from evaluation_zoo import CARD_PROTOCOL, FRAMES, SYSTEM, plan

from engine.autoencoder.linear_code import lowest_frequencies
from engine.cli import main
from engine.data.well_reader import load_array
from engine.evaluation.runner import EvaluationSettings, evaluate
from engine.model_files import load_autoencoder
from engine.rollout import RolloutConfig, rollout
from engine.zoo import Zoo, load_zoo
from engine.zoo.plan import ZooModel

TRAJECTORIES, MEMBERS, STEPS = 2, 2, 2
HORIZON = FRAMES - 1  # 7 leads: buckets 1 / 2-4 / 5-7
BUCKETS = {"short": [0], "mid": [1, 2, 3], "long": [4, 5, 6]}  # lead positions
EMULATORS = sorted(m.name for m in plan() if m.kind == "emulator")
AUTOENCODERS = sorted(m.name for m in plan() if m.kind == "autoencoder")


@pytest.fixture(scope="module")
def evaluated(data_root: Path, zoo_root: Path, tmp_path_factory) -> Path:
    """One CLI run over the whole tiny zoo; returns the output directory."""
    from engine.evaluation import selection

    output = tmp_path_factory.mktemp("evaluate")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(selection, "zoo_plan", plan)
        code = main(
            [
                "evaluate",
                SYSTEM,
                "--data",
                str(data_root),
                "--assets",
                str(zoo_root),
                "--output-dir",
                str(output),
                "--trajectories",
                str(TRAJECTORIES),
                "--members",
                str(MEMBERS),
                "--steps",
                str(STEPS),
                "--device",
                "cpu",
                "--horizon",
                "48",
                "--cache-dir",
                str(output / "cache"),
            ]
        )
    assert code == 0
    return output


@pytest.fixture(scope="module")
def results(evaluated: Path) -> dict:
    return json.loads((evaluated / "results" / "results.json").read_text())


def _vrmse(prediction: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """The paper's VRMSE over the last two axes, written out in numpy."""
    error = ((prediction - truth) ** 2).mean(axis=(-2, -1))
    return np.sqrt(error / (truth.var(axis=(-2, -1)) + 1e-6))


def _test_frames(data_root: Path) -> np.ndarray:
    """The picked test trajectories: 2 of 3 evenly spaced are the first and the last."""
    return load_array(data_root / SYSTEM, "test").fields[[0, 2]]


def _bucket_means(per_lead: np.ndarray) -> dict[str, float]:
    """per_lead: (trajectory, lead, field) -> mean per bucket."""
    return {name: float(per_lead[:, leads].mean()) for name, leads in BUCKETS.items()}


def test_json_holds_every_model_bucket_field_and_the_protocol(results):
    assert results["format"] == "latentsim-evaluation"
    settings = results["settings"]
    assert (settings["trajectories"], settings["members"], settings["horizon"]) == (2, 2, 48)
    assert settings["sampler_options"] == {"order": 3}
    system = results["systems"][SYSTEM]
    # horizon 48 is cut to the 7 frames left after the context frame
    assert (system["horizon"], system["trajectories"], system["split_size"]) == (HORIZON, 2, 3)
    assert system["trajectory_indices"] == [0, 2]
    assert system["seeds"] == [2_000_000, 2_000_002]
    assert system["buckets"] == [
        {"name": "short", "leads": [1, 1], "lead_time": [0.2, 0.2]},
        {"name": "mid", "leads": [2, 4], "lead_time": [0.4, pytest.approx(0.8)]},
        {"name": "long", "leads": [5, 7], "lead_time": [1.0, pytest.approx(1.4)]},
    ]
    assert "round(H/5)" in system["bucket_rule"]
    assert sorted(system["models"]) == EMULATORS
    assert sorted(system["autoencoders"]) == AUTOENCODERS
    assert system["missing"] == {} and system["rates"] == [3, 6, 12]
    fields = ["vorticity", "velocity_x", "velocity_y"]
    for model in system["models"].values():
        diffusion = model["method"] == "diffusion"
        assert model["status"] == "ok" and model["members"] == (MEMBERS if diffusion else 1)
        assert model["lead_frames"] == list(range(1, 8)) and len(model["vrmse_by_lead"]) == 7
        long = model["buckets"]["long"]
        assert set(long["vrmse"]["by_field"]) == set(fields)
        assert long["vrmse"]["mean"] == pytest.approx(
            np.mean(list(long["vrmse"]["by_field"].values()))
        )
        for band in ("low", "mid", "high"):
            assert np.isfinite(long[f"spectral_{band}"]["mean"])
        if diffusion:
            assert model["sampler"] == {"name": "ab", "steps": STEPS, "order": 3}
            assert 0 < model["ssr_rollout"] == pytest.approx(np.mean(model["ssr_by_lead"]))
            assert set(long["crps_fair"]["by_field"]) == set(fields)
            assert long["crps_fair"]["mean"] is not None  # all fields in units "1"
        else:
            assert "ssr_rollout" not in model and "crps_fair" not in long
            assert model["coercions"] == [
                "members 2 -> 1: a deterministic emulator's members would be identical"
            ]
    assert [f["number"] for f in results["findings"]] == [1, 2, 3, 4, 5, 6, 7]
    run = results["run"]
    assert run["command"].startswith("latentsim evaluate kolmogorov --trajectories 2")
    assert run["machine"]["cpu_count"] >= 1 and run["machine"]["torch"] == torch.__version__
    assert run["wall_time_s"] > 0 and run["date"].startswith("20")


def test_autoencoder_floor_and_persistence_match_a_numpy_computation(results, data_root, zoo_root):
    system = results["systems"][SYSTEM]
    fields = _test_frames(data_root)  # (2, 8, 3, 16, 16)
    truth = fields[:, 1:]
    persistence = _vrmse(np.repeat(fields[:, :1], HORIZON, axis=1), truth)
    for bucket, value in _bucket_means(persistence).items():
        assert system["persistence"]["buckets"][bucket]["vrmse"]["mean"] == pytest.approx(
            value, rel=1e-5
        )
    for name in AUTOENCODERS:
        model, preprocessing, _ = load_autoencoder(zoo_root / "autoencoders" / name, SYSTEM, "cpu")
        with torch.no_grad():
            frames = torch.from_numpy(truth.reshape(-1, *truth.shape[2:]))
            restored = preprocessing.inverse(model(preprocessing(frames))).numpy()
        floor = _vrmse(restored.reshape(truth.shape), truth)
        for bucket, value in _bucket_means(floor).items():
            assert system["autoencoders"][name]["buckets"][bucket]["vrmse"]["mean"] == (
                pytest.approx(value, rel=1e-4)
            ), (name, bucket)
        # The DCT reference, with scipy's transform: keep each channel's lowest-frequency
        # coefficients (as many as the latent holds values per channel) in preprocessed space.
        record = system["autoencoders"][name]["linear_code"]
        keep = lowest_frequencies(truth.shape[-2:], record["coefficients_per_channel"]).numpy()
        channels, cells = truth.shape[2], truth.shape[3] * truth.shape[4]
        assert record["rate"] == channels * cells / (channels * keep.sum())
        assert record["rate"] >= system["autoencoders"][name]["rate"]
        coefficients = scipy.fft.dctn(preprocessing(frames).numpy(), axes=(-2, -1), norm="ortho")
        projected = scipy.fft.idctn(coefficients * keep, axes=(-2, -1), norm="ortho")
        linear = preprocessing.inverse(torch.from_numpy(projected).float()).numpy()
        for bucket, value in _bucket_means(_vrmse(linear.reshape(truth.shape), truth)).items():
            assert record["buckets"][bucket]["vrmse"]["mean"] == pytest.approx(value, rel=1e-4)


def test_emulator_scores_match_a_rollout_scored_here(results, data_root, zoo_root):
    """The latent deterministic model at rate 6, rolled out again from each picked test
    trajectory's first frame and scored with numpy, per field and bucket."""
    zoo = load_zoo(zoo_root)
    name = f"{SYSTEM}-deterministic-ae6"
    pipeline = zoo.pipeline(name, "cpu")
    fields = _test_frames(data_root)
    arrays = load_array(data_root / SYSTEM, "test")
    per_lead = []
    for pick, index in enumerate([0, 2]):
        conditions = {"Reynolds": float(arrays.parameters["Reynolds"][index])}
        prediction = rollout(pipeline, fields[pick, :1], conditions, RolloutConfig(horizon=HORIZON))
        members = np.stack([prediction[c].values for c in pipeline.spec.channel_names], axis=2)
        per_lead.append(_vrmse(members.mean(axis=0), fields[pick, 1:]))
    per_lead = np.stack(per_lead)  # (2, 7, 3)
    model = results["systems"][SYSTEM]["models"][name]
    for bucket, leads in BUCKETS.items():
        by_field = per_lead[:, leads].mean(axis=(0, 1))
        recorded = model["buckets"][bucket]["vrmse"]["by_field"]
        np.testing.assert_allclose(
            [recorded[c] for c in pipeline.spec.channel_names], by_field, rtol=1e-4
        )
    np.testing.assert_allclose(model["vrmse_by_lead"], per_lead.mean(axis=(0, 2)), rtol=1e-4)


def test_card_check_reproduces_each_cards_test_metrics(results, zoo_root):
    zoo = load_zoo(zoo_root)
    for name, model in results["systems"][SYSTEM]["models"].items():
        check = model["card_check"]
        card = zoo.card(name)["training"]["test_metrics"]
        assert check["card"] == json.loads(json.dumps(card))
        assert check["protocol"]["trajectories"] == CARD_PROTOCOL.trajectories
        assert check["remeasured"]["trajectories"] == card["trajectories"]
        compared = check["compared"]["vrmse_mean"]
        assert compared["card"] == card["vrmse_mean"]
        # float16 published weights against the float32 ones the card was measured with
        assert abs(compared["relative_difference"]) < 1e-2, name
        assert check["status"] == "reproduced"
        if model["method"] == "diffusion":
            assert "spread_skill_mean" in check["compared"]


def test_markdown_has_the_paper_layout_the_findings_and_the_run(results, evaluated):
    text = (evaluated / "RESULTS.md").read_text()
    system = results["systems"][SYSTEM]
    assert "| kolmogorov | CR | 1–1 | 2–4 | 5–7 |" in text
    long = [
        system["models"][f"{SYSTEM}-diffusion-ae{r}"]["buckets"]["long"]["vrmse"]["mean"]
        for r in (3, 6, 12)
    ]
    row = next(line for line in text.splitlines() if line.startswith("| diffusion | 3 / 6 / 12"))
    assert row.endswith(f"| {' / '.join(f'{v:.3f}' for v in long)} |")
    for label in (
        "deterministic | 3 / 6 / 12",
        "pixel deterministic | —",
        "pixel diffusion | —",
        "autoencoder floor | 3 / 6 / 12",
        "persistence | —",
    ):
        assert f"| {label} |" in text
    assert "| paper: TGC (Kolmogorov stands in) | CR | 1–10 | 11–30 | 31–50 |" in text
    assert "short 1–1 (t = 0.2–0.2), mid 2–4" in text
    assert "2 of the 3 test trajectories (evenly spaced, seeds 2000000, 2000002; 8 frames" in text
    for finding in results["findings"]:
        assert f"### {finding['number']}. {finding['title']}: {finding['statement']}" in text
    assert results["run"]["command"] in text
    assert f"{results['run']['machine']['cpu_count']} CPUs" in text
    assert "2 test trajectories per system" in text and "2 members per diffusion" in text
    compared = system["models"][f"{SYSTEM}-deterministic-ae3"]["card_check"]["compared"]
    card = compared["vrmse_mean"]
    row = next(
        line for line in text.splitlines() if line.startswith(f"| `{SYSTEM}-deterministic-ae3` |")
    )
    assert row.endswith(
        f"| {card['card']:.3f} → {card['remeasured']:.3f} "
        f"({card['relative_difference']:+.1%}, reproduced) |"
    )
    assert (
        "![VRMSE and spread-skill against lead time, kolmogorov]"
        "(results/vrmse-kolmogorov.png)" in text
    )


def test_figure_is_a_png(evaluated):
    png = evaluated / "results" / f"vrmse-{SYSTEM}.png"
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000


# -------------------------------------------------------------- missing and diverged models
def _settings(**options) -> EvaluationSettings:
    return EvaluationSettings(
        **{
            "trajectories": 1,
            "members": 2,
            "steps": 2,
            "device": "cpu",
            "card_check": False,
            "shift": False,
            **options,
        }
    )


def test_missing_and_unselected_models_are_listed_and_findings_say_so(data_root, zoo_root):
    planned = ZooModel(
        f"{SYSTEM}-diffusion-ae24",
        "emulator",
        SYSTEM,
        {},
        method="diffusion",
        space="latent",
        rate=24,
        autoencoder=f"{SYSTEM}-ae24",
    )
    lines = []
    selected = [f"{SYSTEM}-diffusion-ae3", f"{SYSTEM}-deterministic-ae3"]
    results = evaluate(
        [SYSTEM],
        _settings(),
        zoo=load_zoo(zoo_root),
        data_root=data_root,
        models=selected,
        plan=[*plan(), planned],
        log=lines.append,
    )
    system = results[SYSTEM]
    assert sorted(system["models"]) == sorted(selected)
    missing = system["missing"]
    assert missing[planned.name]["reason"] == "not in the manifest (not trained yet)"
    assert missing[f"{SYSTEM}-diffusion-ae6"]["reason"] == "not selected (--models)"
    assert missing[f"{SYSTEM}-diffusion-ae6"]["rate"] == 6
    assert set(system["autoencoders"]) == set(AUTOENCODERS)  # floors are always measured
    assert any(f"missing {planned.name}: not in the manifest" in line for line in lines)
    assert any(
        line.startswith(f"  [2/2] {SYSTEM}-deterministic-ae3: 1 member(s)") for line in lines
    )

    from engine.evaluation.findings import check_findings

    findings = check_findings(results)
    assert findings[1].verdict in ("NOT EVALUATED", "MISSED")
    assert f"{SYSTEM}-deterministic-ae6" in findings[1].systems[SYSTEM].missing
    assert f"{SYSTEM}-diffusion-ae24" in findings[3].missing


def test_records_are_reused_only_for_the_same_weights_settings_and_data(
    data_root, zoo_root, tmp_path, monkeypatch
):
    from engine.evaluation import runner

    name = f"{SYSTEM}-diffusion-ae3"
    cache_dir = tmp_path / "cache"

    def run(**options):
        lines = []
        results = evaluate(
            [SYSTEM],
            _settings(**options),
            zoo=load_zoo(zoo_root),
            data_root=data_root,
            models=[name],
            log=lines.append,
            cache_dir=cache_dir,
        )
        return results[SYSTEM]["models"][name], lines

    first, _ = run()
    measured = []
    real_measure = runner._measure
    monkeypatch.setattr(
        runner, "_measure", lambda *a: measured.append(a[1].name) or real_measure(*a)
    )
    again, lines = run()
    assert measured == [] and again == json.loads(json.dumps(first))
    assert any("reused: measured" in line for line in lines)
    run(seed=1)  # other settings: measured again
    assert measured == [name]
    # An unreadable record, or one of other weights, is measured again too.
    record = cache_dir / f"{name}.test.json"
    record.write_text("{ not json")
    run(seed=1)
    stored = json.loads(record.read_text())
    stored["key"]["weights_sha256"] = "0" * 64
    record.write_text(json.dumps(stored))
    run(seed=1)
    assert measured == [name] * 3


def test_a_diverging_rollout_is_recorded_not_raised(data_root, zoo_root, monkeypatch, tmp_path):
    """NaN from the third emulator call (leads 5-6): short and mid are scored, long is not."""
    name = f"{SYSTEM}-deterministic-ae6"
    load = Zoo.pipeline

    def poisoned(self, model, device="auto"):
        pipeline = load(self, model, device)
        generate, calls = pipeline.emulator.generate, []

        def generate_nan(context, label, **options):
            calls.append(1)
            out = generate(context, label, **options)
            return out * float("nan") if len(calls) >= 3 else out

        pipeline.emulator.generate = generate_nan
        return pipeline

    monkeypatch.setattr(Zoo, "pipeline", poisoned)
    results = evaluate(
        [SYSTEM],
        _settings(),
        zoo=load_zoo(zoo_root),
        data_root=data_root,
        models=[name],
        plan=plan(),
        log=lambda line: None,
    )
    model = results[SYSTEM]["models"][name]
    assert model["status"] == "diverged"
    assert model["divergences"] == [
        {
            "trajectory": 0,
            "seed": 2_000_000,
            "member": 0,
            "lead": 5,
            "lead_time": pytest.approx(1.0),
            "fields": ["vorticity", "velocity_x", "velocity_y"],
        }
    ]
    assert model["buckets"]["long"]["vrmse"] is None
    assert model["buckets"]["mid"]["vrmse"]["mean"] > 0
    assert model["vrmse_by_lead"][4:] == [None, None, None]

    from engine.evaluation.findings import check_findings
    from engine.evaluation.report import document, json_safe, markdown, write_json

    data = json_safe(
        document(
            {
                "command": "c",
                "date": "d",
                "wall_time_s": 1.0,
                "machine": {
                    "cpu_count": 1,
                    "platform": "p",
                    "python": "3",
                    "torch": "t",
                    "torch_threads": 1,
                    "device": "cpu",
                },
            },
            _settings().record(),
            results,
            check_findings(results),
        )
    )
    write_json(data, tmp_path / "results.json")  # strict JSON: no NaN anywhere
    text = markdown(data)
    assert (
        f"`{name}` diverged on test trajectory 0 (seed 2000000): member 0 non-finite "
        "at lead 5 in vorticity, velocity_x, velocity_y" in text
    )
    assert f"| `{name}` | 1 | " in text and " / div. |" in text


def test_the_code_hash_follows_measuring_code_not_the_report(tmp_path, monkeypatch):
    from engine.evaluation import cache

    for relative in (
        "rollout.py",
        "evaluation/report.py",
        "commands/evaluate.py",
        "zoo/manifest.py",
        "sources/rollout_file.py",
    ):
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_text("x = 1\n")
    monkeypatch.setattr(cache, "ENGINE_ROOT", tmp_path)
    first = cache.engine_source_sha256.__wrapped__()
    (tmp_path / "evaluation/report.py").write_text("x = 2\n")
    (tmp_path / "commands/evaluate.py").write_text("x = 2\n")
    (tmp_path / "zoo/manifest.py").write_text("x = 2\n")  # finds models: their hash says
    (tmp_path / "sources/rollout_file.py").write_text("x = 2\n")  # the explorer's only
    assert cache.engine_source_sha256.__wrapped__() == first
    (tmp_path / "rollout.py").write_text("x = 2\n")
    assert cache.engine_source_sha256.__wrapped__() != first


def test_per_trajectory_vrmse_averages_to_the_bucket_mean(results):
    system = results["systems"][SYSTEM]
    assert len(system["conditions"]) == TRAJECTORIES and "Reynolds" in system["conditions"][0]
    for record in system["models"].values():
        for bucket in record["buckets"].values():
            per_trajectory = bucket["vrmse"]["by_trajectory"]
            assert len(per_trajectory) == TRAJECTORIES
            assert np.mean(per_trajectory) == pytest.approx(bucket["vrmse"]["mean"], rel=1e-12)


def test_markdown_lists_the_long_bucket_per_trajectory(results, evaluated):
    text = (evaluated / "RESULTS.md").read_text()
    assert "Long-bucket VRMSE per test trajectory" in text
    name = f"{SYSTEM}-diffusion-ae3"
    row = next(
        line
        for line in text.splitlines()
        if line.startswith(f"| `{name}` |") and line.count("|") == TRAJECTORIES + 2
    )
    values = results["systems"][SYSTEM]["models"][name]["buckets"]["long"]["vrmse"]
    assert (
        row
        == "| `" + name + "` | " + " | ".join(f"{v:.2f}" for v in values["by_trajectory"]) + " |"
    )


# ----------------------------------------------------------------- distribution shift
def test_shift_reruns_the_test_seeds_out_of_range_and_scores_latent_emulators(results, data_root):
    """Reynolds: training 100-500, valid 10-5000 -> the log-midpoint of 500 and 5000."""
    from engine.stages.testset import load_test_trajectories
    from engine.systems import get_system

    system = results["systems"][SYSTEM]
    shift = system["shift"]
    assert shift["status"] == "ok"
    reynolds = shift["parameters"]["Reynolds"]
    assert reynolds["value"] == pytest.approx(np.sqrt(500 * 5000))
    assert reynolds["train_range"] == [100, 500] and reynolds["valid_range"] == [10, 5000]
    # label: log10 range [2, log10 500] -> [-1, 1]
    expected_label = 2 * (np.log10(reynolds["value"]) - 2) / (np.log10(500) - 2) - 1
    assert reynolds["label"] == pytest.approx(expected_label, rel=1e-6)
    assert shift["seeds"] == system["seeds"] == [2_000_000, 2_000_002]
    assert [c["Reynolds"] for c in shift["conditions"]] == [pytest.approx(reynolds["value"])] * 2
    latent = sorted(n for n in EMULATORS if "pixel" not in n)
    assert sorted(shift["models"]) == latent
    # persistence out of range, from a solver run written out here
    test = load_test_trajectories(data_root / SYSTEM, TRAJECTORIES)
    solver = get_system(SYSTEM, test.fields.shape[-2:])
    truth = np.stack(
        [
            solver.simulate([{"Reynolds": reynolds["value"]}], [seed], n_frames=FRAMES)[0].numpy()
            for seed in system["seeds"]
        ]
    )
    still = _vrmse(np.repeat(truth[:, :1], HORIZON, axis=1), truth[:, 1:])
    for bucket, value in _bucket_means(still).items():
        assert shift["persistence"]["buckets"][bucket]["vrmse"]["mean"] == pytest.approx(
            value, rel=1e-5
        )
    for name, record in shift["models"].items():
        assert record["status"] == "ok" and "card_check" not in record
        assert record["buckets"]["long"]["vrmse"]["mean"] != pytest.approx(
            system["models"][name]["buckets"]["long"]["vrmse"]["mean"], rel=1e-6
        )


def test_resimulating_at_the_recorded_conditions_gives_the_stored_frames(data_root):
    """The shifted truth comes from the dataset's own solver, seeds and frame times."""
    from engine.stages.testset import load_test_trajectories, resimulate

    test = load_test_trajectories(data_root / SYSTEM, TRAJECTORIES)
    recorded = {"Reynolds": float(test.parameters["Reynolds"][0])}
    again = resimulate(test, SYSTEM, recorded)
    # the dataset stores its parameters in float32: the first pick's value is exact
    np.testing.assert_allclose(again.fields[0], test.fields[0], rtol=1e-4, atol=1e-4)
    assert again.seed_list() == test.seed_list()


def test_resimulating_training_seeds_is_refused(data_root):
    from dataclasses import replace

    from engine.errors import ParameterError
    from engine.stages.testset import load_test_trajectories, resimulate

    test = load_test_trajectories(data_root / SYSTEM, TRAJECTORIES)
    training = replace(test, seeds=np.array([0, 2_000_002]))
    with pytest.raises(ParameterError, match="2,000,000"):
        resimulate(training, SYSTEM, {"Reynolds": 1000.0})


def test_shifted_records_are_cached_apart_from_the_stored_test_sets(data_root, zoo_root, tmp_path):
    name = f"{SYSTEM}-deterministic-ae3"
    for _ in range(2):
        lines = []
        evaluate(
            [SYSTEM],
            _settings(shift=True),
            zoo=load_zoo(zoo_root),
            data_root=data_root,
            models=[name],
            log=lines.append,
            cache_dir=tmp_path,
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{name}.shift.json", f"{name}.test.json"]
    assert sum("reused: measured" in line for line in lines) == 2
    assert json.loads((tmp_path / f"{name}.shift.json").read_text())["key"]["version"] == 2


def test_markdown_has_skill_coverage_and_shift_tables(results, evaluated):
    text = (evaluated / "RESULTS.md").read_text()
    system = results["systems"][SYSTEM]
    persistence = system["persistence"]["buckets"]["long"]["vrmse"]["mean"]
    long = [
        system["models"][f"{SYSTEM}-diffusion-ae{r}"]["buckets"]["long"]["vrmse"]["mean"]
        for r in (3, 6, 12)
    ]
    rows = [line for line in text.splitlines() if line.startswith("| diffusion | 3 / 6 / 12")]
    assert rows[1].endswith(f"| {' / '.join(f'{1 - v / persistence:+.3f}' for v in long)} |")
    name = f"{SYSTEM}-diffusion-ae3"
    record = system["models"][name]
    coverage = " / ".join(f"{record['buckets'][b]['coverage_90']['mean']:.3f}" for b in BUCKETS)
    assert any(
        line.startswith(f"| `{name}` | 2 |") and f"| {coverage} | 0.333 / 0.333 |" in line
        for line in text.splitlines()
    )
    assert "re-run by the solver with Reynolds 1581 (training 100–500, valid 10–5000" in text
    out = system["shift"]["models"][name]
    ratio = np.mean(out["vrmse_by_lead"]) / np.mean(record["vrmse_by_lead"])
    row = next(
        line
        for line in text.splitlines()
        if line.startswith(f"| `{name}` |") and line.count("|") == 6 and " → " in line
    )
    assert f"| {ratio:.3f} |" in row
