"""Help labels that read as words: ``flops CONFIG``, ``cost CONFIGS...``, ``--phi PHI``,
``--epochs N``, ``--cost flops|params|...``, instead of the parser's ``{config}``,
``<list[Path]>`` and ``<int range>``."""

from __future__ import annotations

from typing import Any

# An option's value named for what it is, where its type alone says too little.
FLAG_NAMES = {
    "--phi": "PHI", "--resolution": "PX", "--data-dir": "DIR", "--out": "PATH",
    "--resume": "RUN", "--storage": "URL", "--study": "NAME", "--devices": "GPUS",
    "--time": "DURATION", "--models": "NAMES", "--rules": "RULES", "--dataset": "NAME",
    "--decoder-channels": "WIDTHS", "--base": "NAME", "--coefficients": "PATH",
}
# The parser's type label (without <> and " range") -> a word.
TYPE_NAMES = {"int": "N", "float": "NUMBER", "str": "TEXT", "path": "PATH", "file": "FILE",
              "directory": "DIR", "list[str]": "TEXT", "list[Path]": "PATH"}


def _option_label(param: Any) -> Any:
    flag = next((o for o in param.opts if o.startswith("--")), "")

    def label(ctx: Any) -> str:
        if flag in FLAG_NAMES:
            return FLAG_NAMES[flag]
        text = str(param.display_type(ctx)).strip("<>")
        if "|" in text:  # choices: they are the words
            return text
        text = text.removesuffix(" range")
        return TYPE_NAMES.get(text, text.upper())

    return label


def _name_argument(param: Any) -> None:
    name = str(param.name).upper() + ("..." if param.nargs != 1 else "")
    param.metavar = name
    usage = name if param.required else f"[{name}]"
    param._usage_display_name = lambda: usage  # CONFIG, not {config}
    param.display_type_rich = lambda ctx: None  # the help's argument row: no <path>


def name_metavars(command: Any) -> Any:
    """Give every argument and option of ``command`` (a click command or group, and its
    subcommands) a label that reads as a word; returns ``command``."""
    subcommands = getattr(type(command), "commands", None)
    if not isinstance(subcommands, property):  # a lazy group labels each as it loads it
        for sub in getattr(command, "commands", {}).values():
            name_metavars(sub)
    for param in getattr(command, "params", []):
        if param.param_type_name == "argument":
            _name_argument(param)
        elif param.metavar is None and not getattr(param, "is_flag", False):
            param.display_type_rich = _option_label(param)
    return command
