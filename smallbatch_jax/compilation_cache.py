"""JAX's persistent compilation cache: compiled programs kept on disk and reused.

Why the training commands turn it on: a batch sweep compiles, at every m, programs whose
shapes do not depend on m (the lanes' initialization, the evaluation, the noise probe), and
a rerun or a resumed run compiles everything again. Served from the cache, the README's
recommendation run on digits (8 m × 39 lanes, 10 epochs) took 3:44 instead of 5:05 on the
2-core CPU, from an empty cache (docs/benchmarks.md, "Compilation cache").

Several processes may share one directory (a split sweep, the test suite): with a size
limit set, JAX guards every read and write with a file lock and evicts the least recently
used programs; an entry it cannot read is compiled again, with a warning. A cached program
is the one XLA would compile: results are the same, bit for bit (the preemption tests run
with it).

A cache serves only from the path it was written at: jax (0.10.2) puts
`<cache dir>/xla_gpu_per_fusion_autotune_cache_dir` into every program's compile options,
which its cache key hashes, on a CPU too. A digits run's cache moved to another directory
and named with --compilation_cache gave no hit; its programs' keys differed in the compile
options alone (2026-12-07, JAX_DEBUG_LOG_MODULES=jax._src.cache_key). So a cache carried to
another machine (the GPU check's jax_cache.tar.gz) is unpacked at the same absolute path.
"""

import os

import jax

DEFAULT_DIR = os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"),
                           "smallbatch_jax", "jax")
MAX_BYTES = 4 * 2**30
# Programs that compile faster than this are not worth a file (jax's default is 1 s; the
# evaluation and probe programs of the small models take 0.5–5 s on the CPU).
MIN_COMPILE_SECONDS = 0.5


def enable(cache_dir: str | None = None, min_compile_seconds: float = MIN_COMPILE_SECONDS,
           max_bytes: int = MAX_BYTES) -> None:
    """Keeps every program that took at least `min_compile_seconds` to compile in
    `cache_dir` (created), at most `max_bytes` in all. None: the directory JAX was given
    (JAX_COMPILATION_CACHE_DIR), as it was configured, else DEFAULT_DIR; "": no cache, not
    even JAX's. Call it before compiling anything."""
    if cache_dir == "":
        jax.config.update("jax_enable_compilation_cache", False)
        return
    if cache_dir is None and jax.config.jax_compilation_cache_dir:
        return  # configured by whoever runs us (e.g. the test suite): theirs
    cache_dir = os.path.expanduser(cache_dir or DEFAULT_DIR)
    os.makedirs(cache_dir, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", cache_dir)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", min_compile_seconds)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    jax.config.update("jax_compilation_cache_max_size", max_bytes)  # (and the file lock)
