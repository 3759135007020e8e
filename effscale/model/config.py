"""Model configs as data: frozen dataclasses, loaded from and written to YAML with strict checks.

A config file fully describes one model; :func:`effscale.build_model` reads nothing else.
Every value is checked on load, and an error names the file and the key, e.g.
``configs/b4.yaml: stages[2].kernel must be an odd int >= 1, got 4``.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from effscale import atomic
from effscale.errors import ConfigError

BLOCKS = ("mbconv", "bottleneck")
ACTIVATIONS = ("silu", "relu", "relu6")
DEPTH_ROUNDING = ("ceil", "round")
HEAD_TYPES = ("classifier", "unet")
UPSAMPLING = ("nearest", "bilinear")
PADDING = ("symmetric", "same")


@dataclass(frozen=True)
class Stage:
    """One stage: ``repeats`` blocks of one type; only the first takes ``stride``.

    ``expand`` is the ratio of a block's wide to narrow width: for ``mbconv`` the hidden
    width is ``input channels * expand``; for ``bottleneck`` it is ``channels / expand``.
    """

    block: str
    repeats: int
    kernel: int
    stride: int
    expand: float
    channels: int
    se_ratio: float = 0.0


@dataclass(frozen=True)
class ScalingRules:
    """How multipliers become integers; recorded in every derived config's provenance.

    - ``width_divisor``: channels are rounded to a multiple of it, never below 90 %.
    - ``depth_rounding``: ``ceil`` (official EfficientNet) or ``round`` (pycls).
    - ``resolution_multiple``: the scaled input size is rounded to a multiple of it.
    - ``scale_stem_head``: ``False`` keeps stem and head channels at the base's values.
    """

    width_divisor: int = 8
    depth_rounding: str = "ceil"
    resolution_multiple: int = 8
    scale_stem_head: bool = True


@dataclass(frozen=True)
class Provenance:
    """Where a derived config came from: the base, the coefficients and the rounding rules."""

    base: str
    depth_multiplier: float
    width_multiplier: float
    resolution_multiplier: float
    rules: ScalingRules
    tool_version: str
    phi: float | None = None
    alpha: float | None = None
    beta: float | None = None
    gamma: float | None = None
    source: str = "derive"


@dataclass(frozen=True)
class Head:
    """What sits on the backbone: a ``classifier`` (default) or a ``unet`` decoder."""

    type: str = "classifier"
    decoder_channels: tuple[int, ...] = (256, 128, 64, 32, 16)
    upsampling: str = "nearest"


@dataclass(frozen=True)
class ModelConfig:
    """A whole model. Stem and head widths are explicit so that scaling is visible.

    ``family`` is a free-text label of the lineage (``efficientnet``, ``resnet``, a registered
    base's own): written to and read from every config file, never used to build the model.

    ``bn_eps``, ``bn_momentum`` and ``padding`` are what published weights were trained with,
    so that imported weights compute the same function (``effscale weights import``):
    every batch norm's epsilon and momentum (PyTorch's convention: torchvision's EfficientNet
    B5-B7 and timm's ``tf_*`` models use ``bn_eps: 1.0e-3``), and ``padding: same`` for
    TensorFlow's SAME padding of strided convolutions (timm's ``tf_*`` weights: the padding
    depends on the input size, and an odd pixel goes to the bottom and right), where
    ``symmetric`` pads ``kernel // 2`` on every side. Files leave them out at their defaults
    (1e-5, 0.1, symmetric: PyTorch's), so every other config reads and builds as before.
    """

    name: str
    family: str
    num_classes: int
    resolution: int
    dropout: float
    drop_path_rate: float
    activation: str
    stem_channels: int
    stem_kernel: int
    stem_stride: int
    stem_pool: bool
    head_channels: int
    stages: tuple[Stage, ...]
    bn_eps: float = 1e-5
    bn_momentum: float = 0.1
    padding: str = "symmetric"
    head: Head = field(default_factory=Head)
    provenance: Provenance | None = None

    def replace(self, **changes: Any) -> ModelConfig:
        """A copy with some fields changed (configs are immutable)."""
        return dataclasses.replace(self, **changes)


# --------------------------------------------------------------------------- checks


class _Checker:
    """Collects the location (file and key path) for error messages."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, key: str, expected: str, value: Any) -> ConfigError:
        return ConfigError(f"{self.source}: {key} must be {expected}, got {_describe(value)}")

    def mapping(self, key: str, value: Any, allowed: dict[str, bool]) -> dict[str, Any]:
        """Check ``value`` is a mapping with only ``allowed`` keys (value: required?)."""
        if not isinstance(value, dict):
            raise self.fail(key or "the document", "a mapping", value)
        prefix = f"{key}." if key else ""
        for name in value:
            if name not in allowed:
                valid = ", ".join(allowed)
                raise ConfigError(
                    f"{self.source}: unknown key {prefix}{name} (valid keys: {valid})"
                )
        for name, required in allowed.items():
            if required and name not in value:
                raise ConfigError(f"{self.source}: missing required key {prefix}{name}")
        return value

    def integer(self, key: str, value: Any, low: int, high: int | None = None) -> int:
        ok = isinstance(value, int) and not isinstance(value, bool)
        ok = ok and value >= low and (high is None or value <= high)
        if not ok:
            bound = f"an int >= {low}" if high is None else f"an int in [{low}, {high}]"
            raise self.fail(key, bound, value)
        return value

    def number(
        self, key: str, value: Any, low: float, high: float | None = None, open_high: bool = False
    ) -> float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        ok = ok and math.isfinite(value) and value >= low
        if ok and high is not None:
            ok = value < high if open_high else value <= high
        if not ok:
            if high is None:
                bound = f"a finite number >= {low}"
            else:
                bound = f"a number in [{low}, {high}{')' if open_high else ']'}"
            raise self.fail(key, bound, value)
        return float(value)

    def choice(self, key: str, value: Any, choices: tuple[str, ...]) -> str:
        if not isinstance(value, str) or value not in choices:
            raise self.fail(key, "one of " + ", ".join(choices), value)
        return value

    def text(self, key: str, value: Any) -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.fail(key, "a non-empty string", value)
        return value

    def flag(self, key: str, value: Any) -> bool:
        if not isinstance(value, bool):
            raise self.fail(key, "true or false", value)
        return value

    def odd(self, key: str, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1 or value % 2 == 0:
            raise self.fail(key, "an odd int >= 1", value)
        return value

    def stride(self, key: str, value: Any) -> int:
        if isinstance(value, bool) or value not in (1, 2):
            raise self.fail(key, "1 or 2", value)
        return value


def _describe(value: Any) -> str:
    if isinstance(value, str):
        hint = ""
        try:
            float(value)
            # Unquoted, only exponent forms (1e-3) stay strings; "3" or "0.5" was quoted.
            if "e" in value.lower() and any(ch.isdigit() for ch in value):
                hint = " (YAML 1.1 reads this as a string; write it with a decimal point " \
                       "and a signed exponent, e.g. 1.0e-3)"
            elif any(ch.isdigit() for ch in value):
                hint = " (quoted: remove the quotes for a number)"
        except ValueError:
            pass
        return f"the string {value!r}{hint}"
    if isinstance(value, bool):
        return f"{str(value).lower()} (a boolean; quote it if you meant a string)"
    if value is None:
        return "nothing (null)"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return repr(value)


_STAGE_KEYS = {
    "block": True, "repeats": True, "kernel": True, "stride": True,
    "expand": True, "channels": True, "se_ratio": False,
}
_RULE_KEYS = {
    "width_divisor": False, "depth_rounding": False,
    "resolution_multiple": False, "scale_stem_head": False,
}
_PROVENANCE_KEYS = {
    "base": True, "depth_multiplier": True, "width_multiplier": True,
    "resolution_multiplier": True, "rules": True, "tool_version": True,
    "phi": False, "alpha": False, "beta": False, "gamma": False, "source": False,
}
_HEAD_KEYS = {"type": False, "decoder_channels": False, "upsampling": False}
_CONFIG_KEYS = {
    "name": True, "family": True, "num_classes": True, "resolution": True,
    "dropout": True, "drop_path_rate": True, "activation": True,
    "stem_channels": True, "stem_kernel": True, "stem_stride": True, "stem_pool": False,
    "head_channels": True, "stages": True, "bn_eps": False, "bn_momentum": False,
    "padding": False, "head": False, "provenance": False,
}
_LAYER_DEFAULTS = {"bn_eps": 1e-5, "bn_momentum": 0.1, "padding": "symmetric"}


def _stage(check: _Checker, key: str, raw: Any) -> Stage:
    raw = check.mapping(key, raw, _STAGE_KEYS)
    return Stage(
        block=check.choice(f"{key}.block", raw["block"], BLOCKS),
        repeats=check.integer(f"{key}.repeats", raw["repeats"], 1),
        kernel=check.odd(f"{key}.kernel", raw["kernel"]),
        stride=check.stride(f"{key}.stride", raw["stride"]),
        expand=check.number(f"{key}.expand", raw["expand"], 0.01, 64),
        channels=check.integer(f"{key}.channels", raw["channels"], 1),
        se_ratio=check.number(f"{key}.se_ratio", raw.get("se_ratio", 0.0), 0.0, 1.0, True),
    )


def rules_from_dict(raw: Any, check: _Checker | None = None, key: str = "rules") -> ScalingRules:
    """Build :class:`ScalingRules` from a mapping, checking every value."""
    check = check or _Checker("scaling rules")
    raw = check.mapping(key, raw, _RULE_KEYS)
    default = ScalingRules()
    return ScalingRules(
        width_divisor=check.integer(
            f"{key}.width_divisor", raw.get("width_divisor", default.width_divisor), 1
        ),
        depth_rounding=check.choice(
            f"{key}.depth_rounding", raw.get("depth_rounding", default.depth_rounding),
            DEPTH_ROUNDING,
        ),
        resolution_multiple=check.integer(
            f"{key}.resolution_multiple",
            raw.get("resolution_multiple", default.resolution_multiple), 1,
        ),
        scale_stem_head=check.flag(
            f"{key}.scale_stem_head", raw.get("scale_stem_head", default.scale_stem_head)
        ),
    )


def _optional_number(check: _Checker, key: str, value: Any, low: float) -> float | None:
    return None if value is None else check.number(key, value, low)


def _provenance(check: _Checker, raw: Any) -> Provenance:
    raw = check.mapping("provenance", raw, _PROVENANCE_KEYS)
    return Provenance(
        base=check.text("provenance.base", raw["base"]),
        depth_multiplier=check.number("provenance.depth_multiplier", raw["depth_multiplier"], 0),
        width_multiplier=check.number("provenance.width_multiplier", raw["width_multiplier"], 0),
        resolution_multiplier=check.number(
            "provenance.resolution_multiplier", raw["resolution_multiplier"], 0
        ),
        rules=rules_from_dict(raw["rules"], check, "provenance.rules"),
        tool_version=check.text("provenance.tool_version", str(raw["tool_version"])),
        phi=_optional_number(check, "provenance.phi", raw.get("phi"), -1e9),
        alpha=_optional_number(check, "provenance.alpha", raw.get("alpha"), 1.0),
        beta=_optional_number(check, "provenance.beta", raw.get("beta"), 1.0),
        gamma=_optional_number(check, "provenance.gamma", raw.get("gamma"), 1.0),
        source=check.text("provenance.source", raw.get("source", "derive")),
    )


def _head(check: _Checker, raw: Any) -> Head:
    raw = check.mapping("head", raw, _HEAD_KEYS)
    default = Head()
    channels = raw.get("decoder_channels", list(default.decoder_channels))
    if not isinstance(channels, list) or not channels:
        raise check.fail("head.decoder_channels", "a non-empty list of ints", channels)
    decoder = tuple(
        check.integer(f"head.decoder_channels[{i}]", c, 1) for i, c in enumerate(channels)
    )
    return Head(
        type=check.choice("head.type", raw.get("type", default.type), HEAD_TYPES),
        decoder_channels=decoder,
        upsampling=check.choice(
            "head.upsampling", raw.get("upsampling", default.upsampling), UPSAMPLING
        ),
    )


def _bn_eps(check: _Checker, value: Any) -> float:
    eps = check.number("bn_eps", value, 0.0, 1.0, True)
    if eps <= 0:
        raise check.fail("bn_eps", "a number in (0, 1)", value)
    return eps


def config_from_dict(raw: Any, source: str = "config") -> ModelConfig:
    """Check a parsed YAML document and turn it into a :class:`ModelConfig`."""
    check = _Checker(source)
    raw = check.mapping("", raw, _CONFIG_KEYS)
    stages_raw = raw["stages"]
    if not isinstance(stages_raw, list) or not stages_raw:
        raise check.fail("stages", "a non-empty list of stage mappings", stages_raw)
    return ModelConfig(
        name=check.text("name", raw["name"]),
        family=check.text("family", raw["family"]),
        num_classes=check.integer("num_classes", raw["num_classes"], 1),
        resolution=check.integer("resolution", raw["resolution"], 8, 8192),
        dropout=check.number("dropout", raw["dropout"], 0.0, 1.0, True),
        drop_path_rate=check.number("drop_path_rate", raw["drop_path_rate"], 0.0, 1.0, True),
        activation=check.choice("activation", raw["activation"], ACTIVATIONS),
        stem_channels=check.integer("stem_channels", raw["stem_channels"], 1),
        stem_kernel=check.odd("stem_kernel", raw["stem_kernel"]),
        stem_stride=check.stride("stem_stride", raw["stem_stride"]),
        stem_pool=check.flag("stem_pool", raw.get("stem_pool", False)),
        head_channels=check.integer("head_channels", raw["head_channels"], 0),
        stages=tuple(_stage(check, f"stages[{i}]", s) for i, s in enumerate(stages_raw)),
        bn_eps=_bn_eps(check, raw.get("bn_eps", _LAYER_DEFAULTS["bn_eps"])),
        bn_momentum=check.number("bn_momentum", raw.get("bn_momentum", 0.1), 0.0, 1.0),
        padding=check.choice("padding", raw.get("padding", "symmetric"), PADDING),
        head=_head(check, raw["head"]) if "head" in raw else Head(),
        provenance=_provenance(check, raw["provenance"]) if "provenance" in raw else None,
    )


# --------------------------------------------------------------------------- YAML


class _StrictLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses duplicate keys instead of keeping the last one."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: dict[Any, Any] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            line = key_node.start_mark.line + 1
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (line {line})", key_node.start_mark
            )
        seen[key] = True
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def parse_yaml(text: str, source: str) -> Any:
    """Parse YAML safely, refusing duplicate keys; errors name ``source``."""
    try:
        return yaml.load(text, Loader=_StrictLoader)
    except yaml.constructor.ConstructorError as exc:
        raise ConfigError(f"{source}: {exc.problem}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{source}: malformed YAML{where}: {problem}") from None


def read_yaml_file(path: str | os.PathLike[str]) -> Any:
    """Read and parse a YAML file, turning I/O problems into one-line errors."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{file}: no such file") from None
    except IsADirectoryError:
        raise ConfigError(f"{file}: is a directory, not a YAML file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{file}: cannot read ({exc.__class__.__name__}: {exc})") from None
    return parse_yaml(text, str(file))


def load_config(path: str | os.PathLike[str]) -> ModelConfig:
    """Load and check a model config YAML file."""
    return config_from_dict(read_yaml_file(path), str(path))


def config_to_dict(config: ModelConfig) -> dict[str, Any]:
    """Plain-data form of a config, in a stable, readable key order."""
    data = dataclasses.asdict(config)
    # Floats stay floats (1.0, not 1) so a file reads back to the same text it was written as.
    data["stages"] = [
        {**stage, "expand": float(stage["expand"]), "se_ratio": float(stage["se_ratio"])}
        for stage in data["stages"]
    ]
    data["dropout"], data["drop_path_rate"] = float(config.dropout), float(config.drop_path_rate)
    data["head"]["decoder_channels"] = list(config.head.decoder_channels)
    for key, default in _LAYER_DEFAULTS.items():
        if data[key] == default:  # left out at PyTorch's defaults: older files read the same
            del data[key]
        elif key != "padding":
            data[key] = float(data[key])
    if config.head == Head():
        del data["head"]
    if config.provenance is None:
        del data["provenance"]
    else:
        data["provenance"] = {k: v for k, v in data["provenance"].items() if v is not None}
    return data


def dump_config(config: ModelConfig) -> str:
    """YAML text for a config; :func:`load_config` reads it back to an equal config."""
    return yaml.safe_dump(
        config_to_dict(config), sort_keys=False, default_flow_style=None, width=120
    )


def save_config(config: ModelConfig, path: str | os.PathLike[str], header: str = "") -> None:
    """Write a config as YAML atomically; ``header`` lines go first, as YAML comments."""
    comment = "".join(f"# {line}\n" for line in header.splitlines())
    atomic.write_text(path, comment + dump_config(config))
