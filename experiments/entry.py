"""What every entry point shares: its flags' declarations, the check for stray arguments,
and, for those that train, one XLA device per CPU core and the persistent compilation
cache before JAX starts.

Each `experiments/*.py` is its docstring, its flags and one library call:

    CONFIG = entry.config_flag()
    WORKDIR = entry.workdir_flag("Where results are written.")
    CACHE = entry.compilation_cache_flag()

    if __name__ == "__main__":
        entry.run(lambda: train_and_evaluate(CONFIG.value, WORKDIR.value), cpu_cores=True,
                  compilation_cache=CACHE)
"""

import sys
import traceback
from collections.abc import Callable

from absl import app, flags, logging
from ml_collections import config_flags

from smallbatch_jax import compilation_cache as cache
from smallbatch_jax.config_args import expand_lr_grids
from smallbatch_jax.engine.sharding import use_cpu_cores
from smallbatch_jax.run.directory import LockedError, WorkdirError

# Errors whose remedy is the user's (a config value, the data, a busy or full workdir): one
# line naming it and exit status 1; the traceback only with --verbosity=1 or more.
EXPECTED_ERRORS = (ValueError, FileNotFoundError, ImportError, LockedError, WorkdirError)


def config_flag():
    """--config=FILE[:ARG], with --config.key=value overrides (required)."""
    config = config_flags.DEFINE_config_file("config", None, "Path to the config file.",
                                             lock_config=True)
    flags.mark_flags_as_required(["config"])
    return config


def workdir_flag(help_text: str):
    """--workdir (required)."""
    workdir = flags.DEFINE_string("workdir", None, help_text)
    flags.mark_flags_as_required(["workdir"])
    return workdir


def compilation_cache_flag():
    """--compilation_cache=DIR: where compiled programs are kept (compilation_cache.enable:
    unset, JAX_COMPILATION_CACHE_DIR if set, else the user's cache directory; '': off)."""
    return flags.DEFINE_string(
        "compilation_cache", None, "Keep compiled programs in this directory and reuse them "
        "(programs the same at every m, reruns, resumes). Unset: $JAX_COMPILATION_CACHE_DIR "
        f"if set, else {cache.DEFAULT_DIR}; '': off.")


def _parse_flags(argv):
    """absl's parser, with an unknown `--config.key` as one line naming the key (and the
    near miss ml_collections suggests) instead of a traceback, and a tuple key given twice
    refused (`repeated_tuple_overrides`)."""
    try:
        rest = app.parse_flags_with_usage(argv)
    except AttributeError as error:
        cause = error.args[0] if error.args else error
        text = str(cause.args[0] if isinstance(cause, KeyError) and cause.args else cause)
        print(f"error: unknown config key {text.strip()}", file=sys.stderr)
        sys.exit(1)
    if "config" in flags.FLAGS and flags.FLAGS["config"].value is not None:
        repeated = repeated_tuple_overrides(argv, flags.FLAGS["config"].value)
        if repeated:
            print(f"error: {repeated}", file=sys.stderr)
            sys.exit(1)
    return rest


def repeated_tuple_overrides(argv, config) -> str:
    """What is wrong where a tuple key (batch_sizes, base_lrs, sweep.*) is overridden more
    than once: ml_collections joins the tuples (`--config.batch_sizes="(2, 4)"` then
    `"(8,)"` runs 2, 4 and 8, where a script's appended override meant 8 alone), while a
    repeated number's last value wins. '' if none is."""
    given: dict[str, list[str]] = {}
    for i, arg in enumerate(argv):
        if arg.startswith("--config."):
            key, has_value, value = arg[len("--config."):].partition("=")
            if not has_value and i + 1 < len(argv):  # (--config.key VALUE)
                value = argv[i + 1]
            given.setdefault(key, []).append(value)
    for key, values in given.items():
        node = config
        for part in key.split("."):
            node = node.get(part) if hasattr(node, "get") else None
        if len(values) > 1 and isinstance(node, (tuple, list)):
            return (f"--config.{key} is given {len(values)} times ({', '.join(values)}): "
                    f"ml_collections joins a tuple's overrides into {tuple(node)!r}; give it "
                    "once, with every value")
    return ""


def run(main: Callable[[], object], *, cpu_cores: bool = False,
        compilation_cache=None) -> None:
    """Parses the flags and runs `main()`; `cpu_cores`: ask XLA for one CPU device per core
    first (sharding.use_cpu_cores: on a CPU, small programs split their lanes over the
    cores; accelerators are not affected); `compilation_cache`: a compilation_cache_flag,
    whose directory keeps the compiled programs (compilation_cache.py)."""
    def absl_main(argv):
        if len(argv) > 1:
            raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
        if cpu_cores:
            use_cpu_cores()
        if compilation_cache is not None:
            cache.enable(compilation_cache.value)
        try:
            if "config" in flags.FLAGS and flags.FLAGS["config"].value is not None:
                expand_lr_grids(flags.FLAGS["config"].value)  # --config.base_lrs=2^-16:2^-4
            main()
        except EXPECTED_ERRORS as error:
            if logging.get_verbosity() >= logging.DEBUG:
                traceback.print_exc()
            print(f"error: {error}", file=sys.stderr)
            sys.exit(1)

    app.run(absl_main, flags_parser=_parse_flags)
