"""Usage errors in effscale's voice: the argument parser checks option values with pydantic,
whose wording ("Input should be greater than or equal to 8", "Value error, ...") names
neither the option nor the value. :func:`usage_message` says both, in one line."""

from __future__ import annotations

import re
from typing import Any

# pydantic error type -> what the value must be ({limit}: the bound in the error's context).
_MUST = {
    "greater_than_equal": "{ge} or more",
    "greater_than": "above {gt}",
    "less_than_equal": "{le} or less",
    "less_than": "below {lt}",
    "int_parsing": "a whole number",
    "int_from_float": "a whole number",
    "int_type": "a whole number",
    "float_parsing": "a number",
    "float_type": "a number",
    "finite_number": "a finite number",
    "bool_parsing": "true or false",
    "string_too_short": "at least {min_length} character(s)",
}
_NOT_ONE_OF = re.compile(r"('.*') is not one of (.+)")


def option_name(param: Any) -> str:
    """``--resolution`` for an option, ``CONFIG`` for an argument, ``a value`` if unknown."""
    if param is None:
        return "a value"
    longs = [o for o in getattr(param, "opts", []) if o.startswith("--")]
    if longs:
        return longs[0]
    return str(getattr(param, "metavar", None) or param.name or "a value").upper()


def _value_error(error: dict[str, Any]) -> str:
    """The text of a validator's own ValueError, without pydantic's "Value error, "."""
    cause = (error.get("ctx") or {}).get("error")
    text = str(cause) if cause is not None else str(error.get("msg", ""))
    return text.removeprefix("Value error, ").rstrip(".")


def _got(given: Any) -> str:
    """``, got -3`` (a plain word unquoted, an empty or spaced one quoted)."""
    if given is None:
        return ""
    plain = isinstance(given, str) and given and given.strip() == given and " " not in given
    return f", got {given}" if plain else f", got {given!r}"


def usage_message(exc: Any) -> str:
    """One line for a usage error of the argument parser: its own text, or, for a value
    pydantic rejected, ``--resolution must be 8 or more, got -3``."""
    cause = exc.__cause__
    errors = cause.errors() if hasattr(cause, "errors") else None
    if not errors:
        return str(exc.format_message())
    error = errors[0]
    name = option_name(getattr(exc, "param", None))
    got = _got(error.get("input"))
    kind = error.get("type", "")
    if kind in _MUST:
        try:
            must = _MUST[kind].format(**(error.get("ctx") or {}))
        except (KeyError, IndexError):
            must = str(error.get("msg", "")).removeprefix("Input should be ")
        return f"{name} must be {must}{got}"
    if kind == "value_error":
        text = _value_error(error)
        if found := _NOT_ONE_OF.fullmatch(text):
            choices = found.group(2).replace("'", "")
            return f"{name} must be one of {choices}{_got(found.group(1).strip(chr(39)))}"
        return f"{name}: {text}"
    text = str(error.get("msg", "")).removeprefix("Value error, ")
    if text.startswith("Input should be "):
        return f"{name} must be {text.removeprefix('Input should be ')}{got}"
    return f"{name}: {text}"
