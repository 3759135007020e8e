"""Config files: round trips, every shipped file, and one clear error per kind of bad input."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers import REPO, shipped_configs

from effscale.errors import ConfigError
from effscale.model.bases import BASES
from effscale.model.config import (
    Head,
    ModelConfig,
    config_to_dict,
    dump_config,
    load_config,
    parse_yaml,
    save_config,
)
from effscale.scaling.derive import PAPER_COEFFICIENTS, Coefficients, derive_config, official_config


def _examples() -> list[ModelConfig]:
    paper = Coefficients(*PAPER_COEFFICIENTS)
    return [
        *(make() for make in BASES.values()),
        official_config(7, num_classes=10),
        derive_config(paper, 0.5, "mobilenetv2"),
        derive_config(paper, -1.0),
        BASES["b0"]().replace(
            head=Head(type="unet", decoder_channels=(64, 32), upsampling="bilinear")),
    ]


@pytest.mark.parametrize("config", _examples(), ids=lambda c: f"{c.name}-{c.head.type}")
def test_dump_load_round_trip(config: ModelConfig, tmp_path: Path) -> None:
    path = tmp_path / "model.yaml"
    save_config(config, path)
    loaded = load_config(path)
    assert loaded == config
    assert dump_config(loaded) == path.read_text()  # the text is stable too


def test_default_head_and_missing_provenance_are_not_written() -> None:
    data = config_to_dict(BASES["b0"]())
    assert "head" not in data and "provenance" not in data
    assert isinstance(data["stages"][0]["expand"], float)  # 1.0, not 1


@pytest.mark.parametrize("path", shipped_configs())
def test_shipped_config_loads(path: str) -> None:
    config = load_config(REPO / path)
    assert config.name == Path(path).stem
    assert config.provenance is not None and config.provenance.base in BASES


# --------------------------------------------------------------------------- bad input


def _b0_data() -> dict[str, Any]:
    return config_to_dict(BASES["b0"]())


def _mutated(change: Callable[[dict[str, Any]], None]) -> str:
    data = _b0_data()
    change(data)
    return yaml.safe_dump(data, sort_keys=False)


def _set(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(data: dict[str, Any]) -> None:
        data[key] = value

    return change


def _set_stage(index: int, key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(data: dict[str, Any]) -> None:
        data["stages"][index][key] = value

    return change


def _drop(key: str) -> Callable[[dict[str, Any]], None]:
    return lambda data: data.pop(key)


def _replace_line(key: str, new: str) -> str:
    """b0's YAML text with the line ``key: ...`` replaced (for values PyYAML would not dump)."""
    text = dump_config(BASES["b0"]())
    text, count = re.subn(rf"^{key}: .*$", new, text, flags=re.MULTILINE)
    assert count == 1
    return text


# (id, file text, expected message after "<path>: ")
BAD_CONFIGS = [
    ("unknown-key", _mutated(_set("colour", "red")),
     "unknown key colour (valid keys: name, family, "),
    ("unknown-stage-key", _mutated(_set_stage(1, "dilation", 2)),
     "unknown key stages[1].dilation (valid keys: block, repeats, kernel, "),
    ("missing-key", _mutated(_drop("resolution")), "missing required key resolution"),
    ("duplicate-key", _replace_line("name", "name: b0\nname: b1"), "duplicate key 'name' (line 2)"),
    ("kernel-string", _mutated(_set_stage(0, "kernel", "3")),
     "stages[0].kernel must be an odd int >= 1, got the string '3' (quoted: remove the quotes "
     "for a number)"),
    ("number-quoted", _mutated(_set("dropout", "0.5")),
     "dropout must be a number in [0.0, 1.0), got the string '0.5' (quoted: remove the quotes"),
    ("bool-for-int", _mutated(_set("num_classes", True)),
     "num_classes must be an int >= 1, got true (a boolean"),
    ("float-for-int", _mutated(_set_stage(3, "repeats", 2.5)),
     "stages[3].repeats must be an int >= 1, got 2.5"),
    ("even-kernel", _mutated(_set_stage(2, "kernel", 4)),
     "stages[2].kernel must be an odd int >= 1, got 4"),
    ("stride-3", _mutated(_set_stage(1, "stride", 3)), "stages[1].stride must be 1 or 2, got 3"),
    ("negative-resolution", _mutated(_set("resolution", -3)),
     "resolution must be an int in [8, 8192], got -3"),
    ("zero-resolution", _mutated(_set("resolution", 0)),
     "resolution must be an int in [8, 8192], got 0"),
    ("dropout-one", _mutated(_set("dropout", 1.0)),
     "dropout must be a number in [0.0, 1.0), got 1.0"),
    ("dropout-nan", _replace_line("dropout", "dropout: .nan"),
     "dropout must be a number in [0.0, 1.0), got nan"),
    ("drop-path-inf", _replace_line("drop_path_rate", "drop_path_rate: .inf"),
     "drop_path_rate must be a number in [0.0, 1.0), got inf"),
    ("provenance-inf", _replace_line("name", "name: b0\nprovenance: {base: b0, "
                                     "depth_multiplier: .inf, width_multiplier: 1.0, "
                                     "resolution_multiplier: 1.0, rules: {}, tool_version: x}"),
     "provenance.depth_multiplier must be a finite number >= 0, got inf"),
    ("yaml11-exponent", _replace_line("dropout", "dropout: 1e-3"),
     "dropout must be a number in [0.0, 1.0), got the string '1e-3' (YAML 1.1 reads this as a "
     "string; write it with a decimal point and a signed exponent, e.g. 1.0e-3)"),
    ("yaml11-no", _replace_line("activation", "activation: no"),
     "activation must be one of silu, relu, relu6, got false (a boolean; quote it"),
    ("unknown-activation", _mutated(_set("activation", "gelu")),
     "activation must be one of silu, relu, relu6, got the string 'gelu'"),
    ("stages-empty", _mutated(_set("stages", [])),
     "stages must be a non-empty list of stage mappings, got a list"),
    ("stage-not-mapping", _mutated(_set("stages", [3])), "stages[0] must be a mapping, got 3"),
    ("unknown-head-type", _mutated(_set("head", {"type": "fpn"})),
     "head.type must be one of classifier, unet, got the string 'fpn'"),
    ("malformed", "name: [b0\nfamily: efficientnet\n", "malformed YAML at line "),
    ("tab-indent", "name: b0\n\tfamily: x\n", "malformed YAML at line 2"),
    ("empty-file", "", "the document must be a mapping, got nothing (null)"),
    ("list-document", "- 1\n- 2\n", "the document must be a mapping, got a list"),
]


@pytest.mark.parametrize(("text", "expected"), [c[1:] for c in BAD_CONFIGS],
                         ids=[c[0] for c in BAD_CONFIGS])
def test_bad_config_error_names_file_and_key(text: str, expected: str, tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert message.startswith(f"{path}: {expected}"), message
    assert "\n" not in message


def test_every_shipped_value_is_checked() -> None:
    """The file b0 round-trips from: none of the bad cases above is a no-op."""
    good = yaml.safe_dump(_b0_data(), sort_keys=False)
    assert all(text != good for _, text, _ in BAD_CONFIGS)
    assert parse_yaml(good, "b0") == _b0_data()


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(path))}: no such file$"):
        load_config(path)


def test_directory_instead_of_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(tmp_path))}: is a directory"):
        load_config(tmp_path)


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("name: café\n".encode("latin-1"))
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(path))}: cannot read"):
        load_config(path)
