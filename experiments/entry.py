"""What every entry point shares: its flags' declarations, the check for stray arguments,
and, for those that train, one XLA device per CPU core before JAX starts.

Each `experiments/*.py` is its docstring, its flags and one library call:

    CONFIG = entry.config_flag()
    WORKDIR = entry.workdir_flag("Where results are written.")

    if __name__ == "__main__":
        entry.run(lambda: train_and_evaluate(CONFIG.value, WORKDIR.value), cpu_cores=True)
"""

from collections.abc import Callable

from absl import app, flags
from ml_collections import config_flags

from smallbatch_jax.sharding import use_cpu_cores


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


def run(main: Callable[[], object], *, cpu_cores: bool = False) -> None:
    """Parses the flags and runs `main()`; `cpu_cores`: ask XLA for one CPU device per core
    first (sharding.use_cpu_cores: on a CPU, small programs split their lanes over the
    cores; accelerators are not affected)."""
    def absl_main(argv):
        if len(argv) > 1:
            raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
        if cpu_cores:
            use_cpu_cores()
        main()

    app.run(absl_main)
