"""derive: phi parsing, coefficients to configs, and the shipped configs staying in sync with
what ``effscale derive`` writes today."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import CONFIGS

from effscale import cli
from effscale.config import ModelConfig, ScalingRules, load_config, save_config
from effscale.derive import (
    PAPER_COEFFICIENTS,
    Coefficients,
    derive_config,
    derived_name,
    load_coefficients,
    official_config,
    parse_phis,
)
from effscale.errors import EffscaleError
from effscale.flops import Complexity, count_flops

PAPER = Coefficients(*PAPER_COEFFICIENTS)


@pytest.mark.parametrize(("text", "expected"), [
    ("7", [7.0]),
    ("0-7", [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]),
    ("-2-1", [-2.0, -1.0, 0.0, 1.0]),
    ("-2--1", [-2.0, -1.0]),
    ("0.5,1.5", [0.5, 1.5]),
    ("0.5-2.5", [0.5, 1.5, 2.5]),
    ("0-2.5", [0.0, 1.0, 2.0]),  # a range stops at its last whole step
    ("1..3", [1.0, 2.0, 3.0]),
    ("1:2", [1.0, 2.0]),
    (" 3 , 0-1 ", [3.0, 0.0, 1.0]),
    ("-1", [-1.0]),
])
def test_parse_phis(text: str, expected: list[float]) -> None:
    assert parse_phis(text) == expected


@pytest.mark.parametrize(("text", "message"), [
    ("", "--phi must be a number"),
    ("abc", "--phi must be a number"),
    ("1-", "--phi must be a number"),
    ("1,,2", "--phi must be a number"),
    ("1e3", "--phi must be a number"),
    ("nan", "--phi must be a number"),
    ("inf", "--phi must be a number"),
    ("3-1", "--phi range '3-1' ends before it starts"),
    ("0-200", "--phi range '0-200' is too long"),
])
def test_parse_phis_rejects(text: str, message: str) -> None:
    with pytest.raises(EffscaleError, match=message.replace("[", r"\[")):
        parse_phis(text)


def test_derived_names() -> None:
    assert [derived_name("b0", p) for p in (3.0, 0.5, -1.0)] == ["b3", "b0.5", "b-1"]
    assert [derived_name("resnet50", p) for p in (0.0, 2.0)] == ["resnet50", "resnet50-phi2"]


def test_derive_b4_multipliers() -> None:
    config = derive_config(PAPER, 4)
    provenance = config.provenance
    assert provenance is not None
    assert (provenance.depth_multiplier, provenance.width_multiplier,
            provenance.resolution_multiplier) == (2.0736, 1.4641, 1.749006)
    assert config.resolution == 392  # 224 * 1.15**4 = 391.78
    assert [s.repeats for s in config.stages] == [3, 5, 5, 7, 7, 9, 3]
    assert (config.stem_channels, config.head_channels) == (48, 1872)


def _measured(config: ModelConfig, tmp_path: Path) -> Complexity:
    """derive -> save -> load -> build and count (count_flops builds the model)."""
    path = tmp_path / f"{config.name}.yaml"
    save_config(config, path)
    loaded = load_config(path)
    assert loaded == config
    return count_flops(loaded, counter="torch", use_cache=False)


@pytest.mark.parametrize("rule", ["ceil", "round"])
def test_flops_grow_about_1_92_per_phi(rule: str, tmp_path: Path) -> None:
    factor = PAPER.flops_factor
    assert factor == pytest.approx(1.92, abs=0.001)
    rules = ScalingRules(depth_rounding=rule)
    flops = [_measured(derive_config(PAPER, phi, rules=rules), tmp_path).flops_conv_linear
             for phi in range(4)]
    ratios = [f / flops[0] / factor**phi for phi, f in enumerate(flops)]
    if rule == "round":
        assert ratios == pytest.approx([1.0] * 4, rel=0.10)
    else:
        # Ceil adds a whole block to every short stage (1 -> 2 repeats at phi 1): measured
        # FLOPs run 16-27 % above 1.92^phi, never below.
        assert all(1.0 <= r <= 1.30 for r in ratios), ratios
        assert max(ratios) > 1.1


def test_negative_and_fractional_phi(tmp_path: Path) -> None:
    configs = {phi: derive_config(PAPER, phi) for phi in (-1.0, 0.0, 0.5, 1.0)}
    assert configs[-1.0].name == "b-1" and configs[0.5].name == "b0.5"
    assert configs[-1.0].resolution == 192  # 224 / 1.15 = 194.8
    reports = {phi: _measured(c, tmp_path) for phi, c in configs.items()}
    flops = [reports[phi].flops_conv_linear for phi in sorted(reports)]
    params = [reports[phi].params for phi in sorted(reports)]
    assert flops == sorted(flops) and len(set(flops)) == 4
    assert params == sorted(params)
    assert params[0] < 5_288_548 == params[1]  # b-1 is smaller than b0


def test_drift_warning() -> None:
    warning = Coefficients(1.5, 1.5, 1.5).drift_warning()
    assert warning is not None and "7.594" in warning
    assert PAPER.drift_warning() is None
    assert Coefficients(1.0, 1.0, 1.0).drift_warning() is not None  # factor 1
    assert Coefficients(2.0, 1.0, 1.0).drift_warning() is None


def test_derive_refuses_bad_input() -> None:
    with pytest.raises(EffscaleError, match=r"--alpha must be a finite number >= 1, got 0.9"):
        derive_config(Coefficients(0.9, 1.1, 1.1), 1)
    with pytest.raises(EffscaleError, match=r"unknown base 'vgg' \(valid: b0, mobilenetv2, "):
        derive_config(PAPER, 1, base="vgg")
    with pytest.raises(EffscaleError, match="B0-B7, not B8"):
        official_config(8)


def test_load_coefficients(tmp_path: Path) -> None:
    path = tmp_path / "coefficients.yaml"
    path.write_text("alpha: 1.3\nbeta: 1.05\ngamma: 1.2\nbase: mobilenetv2\nscore: 0.9\n")
    coeffs = load_coefficients(path)
    assert (coeffs.alpha, coeffs.beta, coeffs.gamma, coeffs.base) == (1.3, 1.05, 1.2,
                                                                      "mobilenetv2")
    path.write_text("alpha: 1.3\nbeta: yes\ngamma: 1.2\n")
    with pytest.raises(EffscaleError, match="beta must be a number, got True"):
        load_coefficients(path)


# --------------------------------------------------------------------------- in sync


@pytest.fixture
def no_flops(monkeypatch: pytest.MonkeyPatch) -> None:
    """The sync checks compare the files written; the FLOPs table is tested in test_cli."""
    report = Complexity(params=1, flops=1, flops_conv_linear=1, activations=1, resolution=8,
                        counter="torch")
    monkeypatch.setattr(cli, "count_flops", lambda *args, **kwargs: report)


SYNC_RUNS = [
    (["--phi", "0-7"], "", [f"b{i}" for i in range(8)]),
    (["--official", "--phi", "0-7"], "official", [f"b{i}" for i in range(8)]),
    (["--base", "mobilenetv2", "--phi", "0"], "", ["mobilenetv2"]),
    (["--base", "resnet50", "--phi", "0"], "", ["resnet50"]),
]


@pytest.mark.parametrize(("args", "folder", "names"), SYNC_RUNS,
                         ids=["b0-b7", "official", "mobilenetv2", "resnet50"])
@pytest.mark.usefixtures("no_flops")
def test_shipped_configs_match_what_derive_writes(
    cli: Callable, args: list[str], folder: str, names: list[str], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    code, _, err = cli("derive", *args, "--out", out)
    assert code == 0, err
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{n}.yaml" for n in names)
    for name in names:
        shipped = CONFIGS / folder / f"{name}.yaml"
        assert (out / f"{name}.yaml").read_text() == shipped.read_text(), (
            f"{shipped} is out of date: rerun `effscale derive {' '.join(args)} "
            f"--out {shipped.parent}`")
