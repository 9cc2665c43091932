"""Seconds spent compiling, as JAX itself reports them.

JAX emits a duration event for every program it traces, lowers and compiles (or, with the
persistent compilation cache, loads: `backend_compile_duration` then covers the cache's
retrieval). Summing those events measures compilation directly, wherever it happens: the
memory probe, the first dispatch of each program, an evaluation program, a resumed run's
recompiles. (The first epoch's excess over the others, used before, read 0 s at two epochs,
and after a resume whose compile took 15 s.)
"""

from jax import monitoring

_PREFIX = "/jax/core/compile/"
_total = [0.0]


def _listen(event: str, seconds: float, **kwargs) -> None:
    del kwargs
    if event.startswith(_PREFIX):
        _total[0] += seconds


monitoring.register_event_duration_secs_listener(_listen)


def compile_seconds() -> float:
    """Seconds this process has spent compiling so far (differences time a stretch)."""
    return _total[0]
