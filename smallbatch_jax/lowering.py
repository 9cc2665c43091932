"""How the lanes and the steps of one program are executed: the single place that decides.

`jax.vmap` over lanes inside a `lax.scan` over steps, with XLA's convolution, is the
reference semantics. It is not always the fastest lowering: on XLA:CPU a vmapped
convolution becomes a grouped convolution, several times slower than the same work as a
batched matrix product (see docs/benchmarks.md). The rest of the code only calls
`map_lanes` and `loop_steps` and builds its model with `conv`, so other lowerings plug in
here, and tests check that every lowering gives the reference's results (equal up to float
rounding: a different program sums in a different order).

- lanes='vmap': `jax.vmap` over the lane axis (reference).
- lanes='unrolled': one copy of the per-lane computation per lane, traced into the same
  program (K independent subgraphs, no grouped convolutions).
- lanes='map': `lax.map` over the lanes, a loop inside the program that runs one lane at a
  time (no grouped convolutions, and a program the size of one lane's).
- conv='xla' (reference), 'patches' (convolution as patches × kernel) or 'shifted' (a sum
  of one matrix product per kernel offset); models/conv.py.
- step_loop='scan': `lax.scan` over the steps of a dispatch (`scan_unroll` steps per
  iteration).
- step_loop='unrolled': the steps of a dispatch traced one after another (no loop); the
  program grows with `steps_per_dispatch`, so keep it small.
- steps_per_dispatch: steps per call of the compiled program; 0 means a whole epoch.
- lane_chunk: at most this many lanes per program call (0: all). The lanes are split into
  near-equal chunks that each run a whole epoch: a smaller working set (on CPU, one that
  stays in cache; on an accelerator, one that fits in memory), identical results. With
  several devices the chunks are dealt out over them and run concurrently.

Lanes over several devices, two ways (the trainer's `mesh`): every lane in one vmapped
program that XLA partitions along the lane axis (`splits_over_devices`), or chunks of lanes
placed round-robin, one program per chunk (`chunks_over_devices`).
"""

import dataclasses
import json
import math
import os

import jax
from jax import lax

from smallbatch_jax.lanes import tree_index, tree_stack
from smallbatch_jax.models.conv import CONV_IMPLS

LANE_MAPS = ("vmap", "unrolled", "map")
STEP_LOOPS = ("scan", "unrolled")
# An unrolled step loop is traced step by step: beyond this the compile time explodes.
MAX_UNROLLED_STEPS = 256


@dataclasses.dataclass(frozen=True)
class Lowering:
    lanes: str = "vmap"
    conv: str = "xla"
    step_loop: str = "scan"
    steps_per_dispatch: int = 0
    scan_unroll: int = 1
    lane_chunk: int = 0

    def __post_init__(self):
        if self.lanes not in LANE_MAPS:
            raise ValueError(f"lowering.lanes={self.lanes!r}; allowed: {LANE_MAPS}")
        if self.conv not in CONV_IMPLS:
            raise ValueError(f"lowering.conv={self.conv!r}; allowed: {CONV_IMPLS}")
        if self.step_loop not in STEP_LOOPS:
            raise ValueError(f"lowering.step_loop={self.step_loop!r}; allowed: {STEP_LOOPS}")
        if self.steps_per_dispatch < 0:
            raise ValueError(f"lowering.steps_per_dispatch={self.steps_per_dispatch}; "
                             "allowed: 0 (a whole epoch) or a positive number of steps")
        if self.step_loop == "unrolled" and not 0 < self.steps_per_dispatch <= MAX_UNROLLED_STEPS:
            raise ValueError("lowering.step_loop='unrolled' needs lowering.steps_per_dispatch "
                             f"in [1, {MAX_UNROLLED_STEPS}]; got {self.steps_per_dispatch}")
        if self.scan_unroll < 1:
            raise ValueError(f"lowering.scan_unroll={self.scan_unroll}; allowed: >= 1")
        if self.lane_chunk < 0:
            raise ValueError(f"lowering.lane_chunk={self.lane_chunk}; allowed: 0 (all lanes at "
                             "once) or a positive number of lanes")

    @property
    def splits_over_devices(self) -> bool:
        """Whether lanes can be split over several devices: every lane in one vmapped program
        (XLA partitions it along the lane axis). Other lowerings run on one device."""
        return self.lanes == "vmap" and self.lane_chunk == 0

    @property
    def chunks_over_devices(self) -> bool:
        """Whether chunks of lanes are dealt out over several devices, each chunk its own
        program on its own device (concurrent: dispatch is asynchronous)."""
        return self.lane_chunk > 0

    def devices_used(self, num_lanes: int, num_devices: int) -> int:
        """How many of `num_devices` devices `num_lanes` lanes can keep busy."""
        if self.splits_over_devices:
            return min(num_devices, num_lanes)
        if self.chunks_over_devices:
            return min(num_devices, len(self.lane_slices(num_lanes)))
        return 1

    def dispatch_lengths(self, steps_per_epoch: int) -> list[int]:
        """Steps of each dispatch of one epoch (at most two distinct lengths: two programs)."""
        chunk = self.steps_per_dispatch or steps_per_epoch
        chunk = min(chunk, steps_per_epoch)
        full, rest = divmod(steps_per_epoch, chunk)
        return [chunk] * full + ([rest] if rest else [])

    def lane_slices(self, num_lanes: int) -> list[tuple[int, int]]:
        """[start, stop) of each chunk of lanes: near-equal sizes (at most two programs)."""
        chunks = -(-num_lanes // (self.lane_chunk or num_lanes))
        bounds = [round(i * num_lanes / chunks) for i in range(chunks + 1)]
        return list(zip(bounds[:-1], bounds[1:]))


# Named lowerings, selectable as config.lowering.preset.
PRESETS = {
    "reference": Lowering(),
    # Every lane's convolutions as one batched matrix product, steps in a scan.
    "patches": Lowering(conv="patches"),
    # The same in chunks of at most 7 lanes (13 lanes: 6 + 7), a smaller working set.
    "patches_chunked": Lowering(conv="patches", lane_chunk=7),
    # One lane and one step per dispatch with XLA's convolution: what a Python loop over
    # runs does, with the data kept on the device.
    "sequential": Lowering(lanes="unrolled", step_loop="unrolled", steps_per_dispatch=1,
                           lane_chunk=1),
}


# Measured tables of the fastest lowering per m on an accelerator backend, as
# experiments.gpu_check writes them (lowering_table.json): smallbatch_jax/measured/{backend}.json.
MEASURED_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "measured")


def read_measured_table(path: str) -> dict:
    """A table of measured lowerings (`write_measured_table`), checked."""
    try:
        with open(path) as f:
            table = json.load(f)
        choices = {int(m): Lowering(**fields) for m, fields in table["choices"].items()}
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ValueError(f"{path}: not a table of measured lowerings ({error})") from error
    if not choices:
        raise ValueError(f"{path}: no batch size measured")
    return {**table, "choices": choices}


def write_measured_table(path: str, choices: dict[int, Lowering], **provenance) -> None:
    """The fastest lowering per measured m, with where it was measured (device, jax version,
    date, model, K)."""
    table = {**provenance,
             "choices": {str(m): dataclasses.asdict(lowering)
                         for m, lowering in sorted(choices.items())}}
    with open(path, "w") as f:
        json.dump(table, f, indent=2)


def measured_choice(table: dict, batch_size: int) -> Lowering:
    """The table's lowering for the measured m nearest to `batch_size` in log₂ m (a tie goes
    to the smaller m)."""
    nearest = min(table["choices"], key=lambda m: (abs(math.log2(m / batch_size)), m))
    return table["choices"][nearest]


def choose_lowering(backend: str, batch_size: int, num_lanes: int = 13,
                    num_devices: int = 1, table_path: str = "") -> Lowering:
    """The lowering used when a config asks for 'auto': the fastest measured per backend.

    `num_lanes`: K; `num_devices`: the local devices the lanes may use; `table_path`: a
    measured table to use instead of the packaged one (e.g. one experiments.gpu_check just
    wrote on this machine).

    CPU (reduced AlexNet, 2-core XLA:CPU, interleaved repeats; docs/benchmarks.md): for
    m ≤ 16 the convolutions as patches. With one CPU device per core
    (sharding.use_cpu_cores), the lanes in chunks of at most 4 (at least one chunk per
    device) dealt out over the cores, which run them concurrently: one step of all lanes is
    too small for XLA to spread over the cores by itself, and small chunks keep each
    program's working set in cache (m = 2, K = 13: 1.67× the sequential baseline against 1.55×
    for every lane in one program split over the cores, which also pads 13 lanes to 14;
    m = 8: 1.12× against 0.97×). On a single device, every lane in one program at m ≤ 4
    and chunks of ≤ 7 lanes up to m = 16. Above m = 16, XLA's own convolution, one lane and
    one step per dispatch, the lanes dealt out over the devices: XLA:CPU's convolution runs
    ~20× slower inside a loop, and at m ≥ 32 patches lose to it.

    Other backends (GPU): the fastest lowering of a table measured there by
    experiments.gpu_check (reduced AlexNet, K = 13; smallbatch_jax/measured/gpu.json, whose
    device, jax version and date docs/benchmarks.md shows), for the measured m nearest to
    `batch_size`. Without a table: the reference (vmap, scan), split over every device.
    """
    if table_path:
        if not os.path.isfile(table_path):
            raise ValueError(f"lowering.table={table_path!r}: no such file")
        return measured_choice(read_measured_table(table_path), batch_size)
    if backend != "cpu":
        packaged = os.path.join(MEASURED_DIR, f"{backend}.json")
        if not os.path.isfile(packaged):
            return PRESETS["reference"]
        return measured_choice(read_measured_table(packaged), batch_size)
    if batch_size > 16:
        return PRESETS["sequential"]
    if num_devices > 1 and num_lanes > 1:
        return Lowering(conv="patches", lane_chunk=min(4, -(-num_lanes // num_devices)))
    if batch_size <= 4:
        return PRESETS["patches"]
    return PRESETS["patches_chunked"]


def map_lanes(fn, in_axes, lowering: Lowering):
    """`fn` applied to every lane: like `jax.vmap(fn, in_axes)`, lowered as `lowering` says.

    `in_axes` is a tuple with one entry per positional argument: 0 for a lane-stacked
    argument, None for one that every lane shares.
    """
    if lowering.lanes == "vmap":
        return jax.vmap(fn, in_axes=in_axes)
    if lowering.lanes == "map":
        def mapped(*args):
            def one_lane(lane_args):
                return fn(*(a if axis == 0 else shared
                            for a, shared, axis in zip(lane_args, args, in_axes)))

            return lax.map(one_lane, tuple(a if axis == 0 else None
                                           for a, axis in zip(args, in_axes)))

        return mapped

    def unrolled(*args):
        stacked = [a for a, axis in zip(args, in_axes) if axis == 0]
        num_lanes = jax.tree.leaves(stacked)[0].shape[0]
        outputs = []
        for lane in range(num_lanes):
            lane_args = [tree_index(a, lane) if axis == 0 else a for a, axis in zip(args, in_axes)]
            outputs.append(fn(*lane_args))
        return tree_stack(outputs)

    return unrolled


def loop_steps(body, carry, num_steps: int, lowering: Lowering):
    """Runs `carry = body(carry, i)` for i in 0 … num_steps − 1 as `lowering` says."""
    if lowering.step_loop == "scan":
        carry, _ = lax.scan(lambda c, i: (body(c, i), None), carry, jax.numpy.arange(num_steps),
                            unroll=min(lowering.scan_unroll, max(num_steps, 1)))
        return carry
    for i in range(num_steps):
        carry = body(carry, i)
    return carry
