"""The execution strategy: how the lanes, steps and convolutions of one program are computed.

`jax.vmap` over lanes inside a `lax.scan` over steps, with XLA's convolution, is the
reference semantics. It is not always the fastest: on XLA:CPU a vmapped convolution becomes
a grouped convolution, several times slower than the same work as a batched matrix product
(docs/benchmarks.md). A `Strategy` names one way; the programs (train/programs.py) and the
models' convolution layer (models/conv.py) follow it, and tests check that every strategy
gives the reference's results (equal up to float rounding: another program sums in another
order).

- lane_map='vmap': `jax.vmap` over the lane axis (reference); 'unrolled': one copy of the
  per-lane computation per lane in the same program (K independent subgraphs, no grouped
  convolutions); 'map': `lax.map` over the lanes, a loop inside the program that runs one
  lane at a time (no grouped convolutions, a program the size of one lane's).
- conv='xla' (reference), 'patches' (patches × kernel) or 'shifted' (one matrix product
  per kernel offset); models/conv.py.
- step_loop='scan': `lax.scan` over the steps of a dispatch, `scan_unroll` steps per
  iteration; 'unrolled': the steps traced one after another (no loop; the program grows with
  `steps_per_dispatch`, so keep it small).
- steps_per_dispatch: steps per call of a compiled program; 0 means a whole epoch.
- lanes_per_program: at most this many lanes in one program (0: all). The lanes are split
  into near-equal groups that each run a whole epoch: a smaller working set (on CPU, one that
  stays in cache; on an accelerator, one that fits in memory), identical results. With
  several devices the groups are dealt out over them and run concurrently (train/plan.py).
- shared_batch (vmap only; matters with one seed, where every lane trains on the same
  batches): True hands the batch to the vmapped step once, unbatched, and XLA folds the
  lanes into the model's first layer, one product over all lanes' weights, which transposes
  those weights each step; False gives each lane its own copy, so that every layer stays a
  per-lane product. Folding wins when the first layer's weights are small beside its
  activations (a convolution: the patches are extracted once); copies win when they are
  large (a dense layer on raw features: the zoo's MLP at m = 2 and 8, 1.31× and 1.14× the
  13 sequential runs folded, 1.83× and 1.57× copied on a 2-core CPU; docs/benchmarks.md).
  Same results within float rounding: another program sums in another order.

`choose_strategy` is what `strategy.preset='auto'` gets: measured per backend, never assumed
(on the reduced AlexNet; `strategy.preset='tune'` measures the model at hand: tune.py).
"""

import dataclasses
import json
import math
import os

from smallbatch_jax.models.conv import CONV_IMPLS

LANE_MAPS = ("vmap", "unrolled", "map")
STEP_LOOPS = ("scan", "unrolled")
# An unrolled step loop is traced step by step: beyond this the compile time explodes.
MAX_UNROLLED_STEPS = 256


@dataclasses.dataclass(frozen=True)
class Strategy:
    lane_map: str = "vmap"
    conv: str = "xla"
    step_loop: str = "scan"
    steps_per_dispatch: int = 0
    scan_unroll: int = 1
    lanes_per_program: int = 0
    shared_batch: bool = True

    def __post_init__(self):
        if self.lane_map not in LANE_MAPS:
            raise ValueError(f"strategy.lane_map={self.lane_map!r}; allowed: {LANE_MAPS}")
        if self.conv not in CONV_IMPLS:
            raise ValueError(f"strategy.conv={self.conv!r}; allowed: {CONV_IMPLS}")
        if self.step_loop not in STEP_LOOPS:
            raise ValueError(f"strategy.step_loop={self.step_loop!r}; allowed: {STEP_LOOPS}")
        if self.steps_per_dispatch < 0:
            raise ValueError(f"strategy.steps_per_dispatch={self.steps_per_dispatch}; "
                             "allowed: 0 (a whole epoch) or a positive number of steps")
        if self.step_loop == "unrolled" and not 0 < self.steps_per_dispatch <= MAX_UNROLLED_STEPS:
            raise ValueError("strategy.step_loop='unrolled' needs strategy.steps_per_dispatch "
                             f"in [1, {MAX_UNROLLED_STEPS}]; got {self.steps_per_dispatch}")
        if self.scan_unroll < 1:
            raise ValueError(f"strategy.scan_unroll={self.scan_unroll}; allowed: >= 1")
        if self.lanes_per_program < 0:
            raise ValueError(f"strategy.lanes_per_program={self.lanes_per_program}; allowed: 0 "
                             "(all lanes in one program) or a positive number of lanes")
        if not isinstance(self.shared_batch, bool):
            raise ValueError(f"strategy.shared_batch={self.shared_batch!r}; allowed: True or "
                             "False")
        if not self.shared_batch and self.lane_map != "vmap":
            raise ValueError("strategy.shared_batch=False (a copy of the batch per lane) goes "
                             f"with lane_map='vmap'; lane_map={self.lane_map!r} already gives "
                             "each lane its own product")


# Named strategies, selectable as config.strategy.preset.
PRESETS = {
    "reference": Strategy(),
    # Every lane's convolutions as one batched matrix product, steps in a scan.
    "patches": Strategy(conv="patches"),
    # The same in groups of at most 7 lanes (13 lanes: 6 + 7), a smaller working set.
    "patches_grouped": Strategy(conv="patches", lanes_per_program=7),
    # One lane and one step per dispatch with XLA's convolution: what a Python loop over
    # runs does, with the data kept on the device.
    "sequential": Strategy(lane_map="unrolled", step_loop="unrolled", steps_per_dispatch=1,
                           lanes_per_program=1),
}

# Measured tables of the fastest strategy per m on an accelerator backend, as
# experiments.gpu_check writes them (strategy_table.json): smallbatch_jax/measured/{backend}.json.
MEASURED_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                            "measured")


def read_measured_table(path: str) -> dict:
    """A table of measured strategies (`write_measured_table`), checked."""
    try:
        with open(path) as f:
            table = json.load(f)
        choices = {int(m): Strategy(**fields) for m, fields in table["choices"].items()}
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ValueError(f"{path}: not a table of measured strategies ({error})") from error
    if not choices:
        raise ValueError(f"{path}: no batch size measured")
    return {**table, "choices": choices}


def write_measured_table(path: str, choices: dict[int, Strategy], **provenance) -> None:
    """The fastest strategy per measured m, with where it was measured (device, jax version,
    date, model, K)."""
    table = {**provenance,
             "choices": {str(m): dataclasses.asdict(strategy)
                         for m, strategy in sorted(choices.items())}}
    with open(path, "w") as f:
        json.dump(table, f, indent=2)


def measured_choice(table: dict, batch_size: int) -> Strategy:
    """The table's strategy for the measured m nearest to `batch_size` in log₂ m (a tie goes
    to the smaller m); the reference beyond a factor 2 of the measured range: a choice
    measured at m = 128 says nothing about m = 2048, where the patches of the fastest small-m
    lowering alone take tens of GiB."""
    measured = table["choices"]
    if not min(measured) / 2 <= batch_size <= 2 * max(measured):
        return PRESETS["reference"]
    nearest = min(measured, key=lambda m: (abs(math.log2(m / batch_size)), m))
    return measured[nearest]


def choose_strategy(backend: str, batch_size: int, num_lanes: int = 13,
                    num_devices: int = 1, table_path: str = "", has_conv: bool = True
                    ) -> Strategy:
    """The strategy used when a config asks for 'auto': the fastest measured per backend.

    `num_lanes`: K; `num_devices`: the local devices the lanes may use; `table_path`: a
    measured table to use instead of the packaged one (e.g. one experiments.gpu_check just
    wrote on this machine); `has_conv`: whether the model has convolutions
    (tune.has_convolutions).

    CPU (reduced AlexNet, 2-core XLA:CPU, interleaved repeats; docs/benchmarks.md): for
    m ≤ 16 the convolutions as patches. With one CPU device per core
    (sharding.use_cpu_cores), the lanes in groups of at most 4 (at least one group per
    device) dealt out over the cores, which run them concurrently: one step of all lanes is
    too small for XLA to spread over the cores by itself, and small groups keep each
    program's working set in cache (m = 2, K = 13: 1.67× the sequential baseline against 1.55×
    for every lane in one program split over the cores, which also pads 13 lanes to 14;
    m = 8: 1.12× against 0.97×). On a single device, every lane in one program at m ≤ 4
    and groups of ≤ 7 lanes up to m = 16. Above m = 16, XLA's own convolution, one lane and
    one step per dispatch, the lanes dealt out over the devices: XLA:CPU's convolution runs
    ~20× slower inside a loop, and at m ≥ 32 patches lose to it. That reason is the
    convolution's: a model without convolutions keeps its lanes vmapped above m = 16, all of
    them in one program split over the devices (the zoo's MLP at m = 32 and 128: 1.7-1.8× one
    lane per program, which lost to the sequential runs; docs/benchmarks.md). And a model
    without convolutions gets a copy of the batch per lane (`shared_batch=False`): its first
    layer is a dense one, whose weights folding would transpose every step (the zoo's MLP,
    m = 2, 8, 32: 1.83, 1.57, 1.45× the sequential runs against 1.31, 1.14, 1.16× folded;
    the zoo's CNNs lose 7-16% with copies or tie, e.g. `plain_cnn` at m = 2, 1.44× against
    1.54×).

    Other backends (GPU): the fastest strategy of a table measured there by
    experiments.gpu_check (reduced AlexNet, K = 13; smallbatch_jax/measured/gpu.json, whose
    device, jax version and date docs/benchmarks.md shows), for the measured m nearest to
    `batch_size`, within a factor 2 of the measured range. Without a table, or outside its
    range: the reference (vmap, scan), split over every device.
    """
    if table_path:
        if not os.path.isfile(table_path):
            raise ValueError(f"strategy.table={table_path!r}: no such file")
        return measured_choice(read_measured_table(table_path), batch_size)
    if backend != "cpu":
        packaged = os.path.join(MEASURED_DIR, f"{backend}.json")
        if not os.path.isfile(packaged):
            return PRESETS["reference"]
        return measured_choice(read_measured_table(packaged), batch_size)
    if batch_size > 16:
        chosen = PRESETS["sequential"] if has_conv else PRESETS["reference"]
    elif num_devices > 1 and num_lanes > 1:
        chosen = Strategy(conv="patches", lanes_per_program=min(4, -(-num_lanes // num_devices)))
    elif batch_size <= 4:
        chosen = PRESETS["patches"]
    else:
        chosen = PRESETS["patches_grouped"]
    return chosen if has_conv else dataclasses.replace(chosen, shared_batch=False)


PRESET_CHOICES = ("auto", "tune", "manual", *PRESETS)


@dataclasses.dataclass(frozen=True)
class StrategyChoice:
    """What a config's `strategy` section asks for (read and checked by
    run/config_checks.strategy_choice): a preset's name, 'auto' (with
    the table to measure from), 'tune' (measured for the model at hand before the run:
    engine/tune.py; `resolve` gives its first candidate, 'auto''s choice) or 'manual' (with
    the fields). `resolve` turns it into the Strategy for a batch size, a number of lanes
    and the devices at hand."""

    preset: str = "auto"
    fields: Strategy = Strategy()  # 'manual' only
    table: str = ""  # 'auto' (and 'tune''s first candidate): a measured table; '' packaged
    tune_share: float = 0.1  # 'tune': at most this share of the run's time spent tuning
    tune_cache: str = ""  # 'tune': the file of tuned choices; '' the user's cache directory

    def tunes(self, model: str, built_in: bool, backend: str) -> bool:
        """Whether this choice is measured for the model at hand before the run: 'tune'
        always; 'auto' unless a measured table matches the model: the table's "model"
        (`table`, or the backend's packaged one, which only a built-in model matches). On a
        CPU without a table every model tunes: `choose_strategy`'s rules are a fallback, not
        a measurement of the model at hand. They took ResNet-20 at m = 8 to 0.91× the
        sequential runs where tuning finds 1.52×, and, re-measured on the reduced AlexNet
        they were made on (the trainer has changed since), they are no longer its fastest
        at m = 8 and 16 (tuning 1.21× and 1.41× their speed; docs/benchmarks.md, "The CPU
        rules on their own model"). A run too short to repay tuning keeps 'auto''s choice
        all the same (engine/tune.py): the default digits runs, the tests' runs."""
        if self.preset == "tune":
            return True
        if self.preset != "auto":
            return False
        if backend == "cpu" and not self.table:
            return True
        path = self.table or os.path.join(MEASURED_DIR, f"{backend}.json")
        if not os.path.isfile(path):
            return True
        # A packaged table was measured on one of the project's models: a user's model
        # named like it is another network. A table of the user's own names theirs.
        matches = read_measured_table(path).get("model") == model
        return not (matches and (built_in or self.table))

    def resolve(self, batch_size: int, num_lanes: int, backend: str, num_devices: int,
                has_conv: bool = True) -> Strategy:
        if self.preset == "manual":
            return self.fields
        if self.preset in ("auto", "tune"):
            return choose_strategy(backend, batch_size, num_lanes, num_devices, self.table,
                                   has_conv)
        return PRESETS[self.preset]
