"""The argument of a config file (`--config=configs/FILE.py:ARG`), as big_vision parses it.

ARG is a comma-separated list of `key=value` or bare `key` (meaning True), e.g.
`depth=20,bn=False,aug`. Each key must be one of the config's declared arguments; values are
converted to the type of the declared default, so a typo fails before any compute.
"""

import importlib.util
import os

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
