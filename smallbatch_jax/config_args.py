"""The argument of a config file (`--config=configs/FILE.py:ARG`), as big_vision parses it,
and the compact learning-rate grids of the command line.

ARG is a comma-separated list of `key=value` or bare `key` (meaning True), e.g.
`depth=20,bn=False,aug`. Each key must be one of the config's declared arguments; values are
converted to the type of the declared default, so a typo fails before any compute.

A grid of powers of two is written `--config.base_lrs=2^-16:2^-4` (every power from 2⁻¹⁶ to
2⁻⁴), `2^-16:2^-4:2` (every second one) or `2^-7` (`expand_lr_grids`): a tuple such as
`(2**-16, …)` is not a literal the flag parser reads.

A user's code named in a config (`config.model`, `config.objective`) is written
"package.module:attribute" (`import_attribute`).
"""

import importlib
import importlib.util
import math
import os
import re

import ml_collections

TRUE, FALSE = ("1", "true", "yes", ""), ("0", "false", "no")


def _convert(key: str, text: str, default):
    if isinstance(default, bool):
        if text.lower() in TRUE:
            return True
        if text.lower() in FALSE:
            return False
        raise ValueError(f"config argument {key}={text!r}: expected True or False")
    try:
        return type(default)(text)
    except ValueError as error:
        raise ValueError(f"config argument {key}={text!r}: expected a "
                         f"{type(default).__name__}") from error


def parse_arg(arg: str | None, **defaults) -> ml_collections.ConfigDict:
    """The declared arguments `defaults`, updated from ARG."""
    values = dict(defaults)
    for item in filter(None, (arg or "").split(",")):
        key, _, text = item.partition("=")
        key = key.strip()
        if key not in defaults:
            raise ValueError(f"config argument {key!r} is unknown; allowed: {sorted(defaults)}")
        values[key] = _convert(key, text.strip(), defaults[key])
    return ml_collections.ConfigDict(values)


def sibling_config(config_file: str, name: str, arg: str | None = None):
    """`get_config(arg)` of the config file `name`.py beside `config_file` (a config's own
    `__file__`): how an experiment's config starts from configs/common.py."""
    path = os.path.join(os.path.dirname(os.path.abspath(config_file)), f"{name}.py")
    spec = importlib.util.spec_from_file_location(f"configs_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config(arg) if arg is not None else module.get_config()


def load_config(path: str):
    """The config of a config file, "configs/FILE.py[:ARG]" (as --config takes it), locked
    as the command line's is: setting a key the config does not have (a typo such as
    `config.optimiser = "adam"`) raises instead of being silently ignored."""
    file, _, arg = path.partition(":")
    if not os.path.isfile(file):
        raise FileNotFoundError(f"config file {file!r} does not exist")
    config = sibling_config(file, os.path.splitext(os.path.basename(file))[0], arg or None)
    config.lock()
    return config


_POWER = r"2(?:\^|\*\*)\(?(-?\d+)\)?"
_GRID = re.compile(rf"^\s*{_POWER}\s*(?::\s*{_POWER}\s*(?::\s*(\d+)\s*)?)?$")


def powers_of_two(text: str) -> tuple[float, ...]:
    """'2^-16:2^-4[:step]' (or 2**k) → the powers of two from the first to the last, every
    `step`-th exponent; '2^-7' → (2⁻⁷,). ValueError for anything else."""
    match = _GRID.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a grid of powers of two; write e.g. 2^-16:2^-4 (every "
                         "power between), 2^-16:2^-4:2 (every second) or 2^-7")
    low, high, step = match.group(1), match.group(2), match.group(3)
    low = int(low)
    high = low if high is None else int(high)
    step = int(step or 1)
    if high < low or step < 1:
        raise ValueError(f"{text!r}: the grid runs from the smaller exponent up, in steps >= 1")
    return tuple(math.ldexp(1.0, k) for k in range(low, high + 1, step))


def expand_lr_grids(config) -> None:
    """Every `base_lrs` of the config (sections included) whose entries are grids written as
    text (`powers_of_two`) as the numbers they stand for, in place: a run's saved config then
    holds the numbers, the same as if they had been given one by one."""
    for key, value in config.items():
        if hasattr(value, "items"):
            expand_lr_grids(value)
        elif key == "base_lrs" and isinstance(value, (tuple, list)) and any(
                isinstance(v, str) for v in value):
            config[key] = tuple(x for v in value for x in (
                powers_of_two(v) if isinstance(v, str) else (v,)))


def import_attribute(path: str, key: str, allowed, what: str):
    """The object "package.module:attribute" names, for config key `key` (whose built-in
    values are `allowed`, and whose imported value should be `what`); ValueError saying what
    failed."""
    module_name, _, attribute = path.partition(":")
    if not module_name or not attribute:
        raise ValueError(f"{key}={path!r} is unknown; allowed: {allowed} or "
                         f"'package.module:attribute' ({what})")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise ValueError(f"{key}={path!r}: cannot import {module_name!r} ({error})"
                         ) from error
    if not hasattr(module, attribute):
        raise ValueError(f"{key}={path!r}: {module_name} has no attribute {attribute!r}")
    return getattr(module, attribute)
