"""The execution plan: everything about how a run's lanes execute, decided once.

`make_plan(choice, num_lanes, batch_size, …)` resolves the strategy asked for (strategy.py:
'auto' measured per backend, a preset, or 'manual' fields; 'tune' measured for the model at
hand by tune.py, which it hands the way to make a candidate's plan) with the precision and
memory budget, looks at the backend and the local devices, and returns a frozen
`ExecutionPlan`; the trainer is built once from it and never revises it. Conflicts raise
here, before anything is compiled for training (the memory budget compiles probes of the
training program, tuning times candidates, nothing else).

The plan also owns how the lanes are cut into groups (`lane_slices`: near-equal groups of at
most `strategy.lanes_per_program`) and how an epoch is cut into dispatches (`dispatch_lengths`,
`epoch_dispatches`: the strategy's steps per dispatch, a default that fits a host's memory
for streamed data, and the cuts at evaluations inside an epoch) and the memory probe it
measures the lanes per program with (`MemoryProbe`: the programs of a candidate plan and a
dispatch's shapes, handed to it by whoever builds the run).

Lanes over several devices, two ways: every lane in one vmapped program that XLA partitions
along the lane axis (`partitioned`; the lanes padded to a multiple of the devices with copies
of the last lane, whose results are dropped), or groups of lanes (`strategy.lanes_per_program`)
dealt out over the devices round-robin, one program per group, run concurrently (dispatch is
asynchronous). Other strategies run on one device.
"""

import dataclasses
from collections.abc import Callable

import jax
from absl import logging
from jax.sharding import Mesh

from smallbatch_jax.engine.sharding import lane_mesh, padded_num_lanes
from smallbatch_jax.engine.strategy import Strategy, StrategyChoice
from smallbatch_jax.engine.tune import StrategyTimer, Tuning, tuned_plan

# config.precision: a default matmul precision (jax.default_matmul_precision: 'default',
# 'high', 'highest'), or 'bf16': the model computed in bfloat16 with float32 parameters,
# optimizer and BatchNorm statistics (engine/step.py: LaneStep.compute_dtype), its matmuls
# at the backend's default precision.
PRECISIONS = ("default", "high", "highest", "bf16")
# The precisions that change the model's compute dtype, and to what (others: float32).
COMPUTE_DTYPES = {"bf16": "bfloat16"}
# Steps per dispatch on streamed data when the strategy says "a whole epoch" (stacking an
# epoch of ImageNet batches on the host would not fit).
STREAMED_STEPS_PER_DISPATCH = 16


def dispatch_lengths(num_steps: int, steps_per_dispatch: int) -> list[int]:
    """Steps of each dispatch of `num_steps` steps, at most `steps_per_dispatch` each (0: all
    in one): at most two distinct lengths, two programs."""
    per_dispatch = min(steps_per_dispatch or num_steps, num_steps)
    full, rest = divmod(num_steps, per_dispatch)
    return [per_dispatch] * full + ([rest] if rest else [])


def lane_slices(num_lanes: int, lanes_per_program: int) -> list[tuple[int, int]]:
    """[start, stop) of each group of at most `lanes_per_program` lanes (0: all in one):
    near-equal sizes, at most two programs."""
    groups = -(-num_lanes // (lanes_per_program or num_lanes))
    bounds = [round(i * num_lanes / groups) for i in range(groups + 1)]
    return list(zip(bounds[:-1], bounds[1:]))


def evaluation_points(steps_per_epoch: int, evals_per_epoch: int) -> list[int]:
    """The steps into an epoch after which it is evaluated: `evals_per_epoch` near-equal
    parts, the epoch's end last."""
    if not 1 <= evals_per_epoch <= steps_per_epoch:
        raise ValueError(f"evals_per_epoch={evals_per_epoch} must be between 1 and the "
                         f"epoch's {steps_per_epoch} steps")
    return [round((i + 1) * steps_per_epoch / evals_per_epoch) for i in range(evals_per_epoch)]


def donates_by_default(backend: str) -> bool:
    """Whether a dispatch's lane state is donated to it unless the config says otherwise.

    On an accelerator, always: the device then holds the lane state once, not twice (it
    matters for ResNet-50 lanes). On XLA:CPU memory is plentiful and donation measured no
    faster (docs/benchmarks.md), so the default stays as before."""
    return backend != "cpu"


@dataclasses.dataclass(frozen=True)
class ExecutionPlan:
    strategy: Strategy
    num_lanes: int
    devices: tuple  # the local devices the lanes run on
    precision: str = "default"
    donate: bool = False
    streamed: bool = False  # the data come from a host pipeline, dispatch by dispatch
    tuning: object = None  # tune.Tuning: how strategy.preset='tune' chose the strategy
    # A group whose lanes partly diverged is compacted (engine/trainer.py) into a program
    # of exactly its live lanes ('exact') or of the next 2^k or 3·2^k lanes ('bucket': at most
    # 2 log₂ K programs to compile per run). None: by the backend, exact on a CPU, where a
    # repeated lane costs a full lane's share (5, 6, 8 lanes of one vmapped digits program:
    # 0.94, 1.71, 2.68 s an epoch, docs/benchmarks.md) and a small program compiles in
    # seconds; buckets on accelerators, where compiling costs more and, at small m, a step's
    # extra lanes cost little (an H100's 13 AlexNet lanes at m = 2 ran 28.7× as fast as
    # 13 sequential runs).
    compaction: str | None = None

    def __post_init__(self):
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision={self.precision!r}; allowed: {PRECISIONS}")
        if self.compaction not in (None, "exact", "bucket"):
            raise ValueError(f"compaction={self.compaction!r}; allowed: None, 'exact', "
                             "'bucket'")
        if len(self.devices) > 1 and not (self.partitioned or self.groups_over_devices):
            raise ValueError("lanes over several devices need every lane in one vmapped "
                             "program (lane_map='vmap', lanes_per_program=0) or groups of "
                             f"lanes (lanes_per_program > 0); got {self.strategy}")

    @property
    def matmul_precision(self) -> str | None:
        """The default matmul precision the programs are traced under (None: the backend's,
        unchanged; so for 'bf16', whose matrix inputs are bfloat16 already)."""
        return None if self.precision in ("default", *COMPUTE_DTYPES) else self.precision

    @property
    def compute_dtype(self) -> str:
        """The dtype the model computes in (LaneStep.compute_dtype): 'bfloat16' for 'bf16',
        else 'float32'."""
        return COMPUTE_DTYPES.get(self.precision, "float32")

    @property
    def exact_compaction(self) -> bool:
        """Whether compacted programs hold exactly the live lanes (see `compaction`)."""
        if self.compaction is None:
            return self.devices[0].platform == "cpu"
        return self.compaction == "exact"

    @property
    def partitioned(self) -> bool:
        """Every lane in one program that XLA partitions over several devices."""
        return (len(self.devices) > 1 and self.strategy.lane_map == "vmap"
                and self.strategy.lanes_per_program == 0)

    @property
    def groups_over_devices(self) -> bool:
        return len(self.devices) > 1 and self.strategy.lanes_per_program > 0

    @property
    def mesh(self) -> Mesh | None:
        """A 1-D mesh over the devices whose axis holds lanes (None on one device)."""
        return lane_mesh(self.devices) if len(self.devices) > 1 else None

    @property
    def num_program_lanes(self) -> int:
        """Lanes of the (one) partitioned program: padded to a multiple of the devices."""
        if not self.partitioned:
            return self.num_lanes
        return padded_num_lanes(self.num_lanes, len(self.devices))

    def lane_slices(self, num_lanes: int | None = None) -> list[tuple[int, int]]:
        """The groups of `num_lanes` lanes (default: the program's), as `lane_slices`."""
        return lane_slices(num_lanes or self.num_program_lanes, self.strategy.lanes_per_program)

    def dispatch_lengths(self, num_steps: int) -> list[int]:
        """Steps of each dispatch of `num_steps` steps (an epoch, or a part of one)."""
        per_dispatch = self.strategy.steps_per_dispatch
        if self.streamed and not per_dispatch:
            per_dispatch = STREAMED_STEPS_PER_DISPATCH
        return dispatch_lengths(num_steps, per_dispatch)

    def epoch_dispatches(self, steps_per_epoch: int, evals_per_epoch: int = 1
                         ) -> tuple[list[int], list[int]]:
        """(the steps of each dispatch of an epoch, the steps into it after which it is
        evaluated): the epoch is cut at its evaluation points, each part as
        `dispatch_lengths` says."""
        points = evaluation_points(steps_per_epoch, evals_per_epoch)
        lengths = [n for start, stop in zip([0] + points[:-1], points)
                   for n in self.dispatch_lengths(stop - start)]
        return lengths, points


@dataclasses.dataclass(frozen=True)
class MemoryProbe:
    """How a plan measures one training dispatch's bytes under a candidate strategy:
    `programs_for(plan)` gives the compiled programs of a plan (engine.Programs) and
    `abstract_dispatch(num_steps)` a dispatch's shapes (batches.BatchSource)."""

    programs_for: Callable
    abstract_dispatch: Callable[[int], object]
    steps_per_epoch: int

    def dispatch_bytes(self, plan: "ExecutionPlan") -> int:
        steps = plan.dispatch_lengths(self.steps_per_epoch)[0]
        lanes = plan.strategy.lanes_per_program or plan.num_lanes
        return self.programs_for(plan).program_bytes(lanes, self.abstract_dispatch(steps),
                                                     steps)


def devices_for(strategy: Strategy, num_lanes: int, available) -> tuple:
    """As many of the `available` devices as the strategy can keep busy: one per lane when
    one vmapped program is partitioned, one per group of lanes when groups are dealt out,
    else one."""
    if strategy.lane_map == "vmap" and strategy.lanes_per_program == 0:
        count = min(len(available), num_lanes)
    elif strategy.lanes_per_program > 0:
        count = min(len(available), len(lane_slices(num_lanes, strategy.lanes_per_program)))
    else:
        count = 1
    return tuple(available[:max(count, 1)])


def plan_for(strategy: Strategy, num_lanes: int, *, precision: str = "default",
             donate: bool | None = None, devices=None, streamed: bool = False,
             memory_budget_bytes: int = 0, memory_probe: MemoryProbe | None = None
             ) -> ExecutionPlan:
    """The plan of a given strategy: the devices it keeps busy, and, under a memory budget,
    the most lanes per program whose dispatch fits (`memory_probe`: a compiled probe's
    bytes on one device; halving from all lanes)."""
    available = list(jax.local_devices() if devices is None else devices)
    if memory_budget_bytes:
        def program_bytes(candidate: Strategy) -> int:
            return memory_probe.dispatch_bytes(plan_for(
                candidate, num_lanes, precision=precision, devices=available[:1],
                streamed=streamed))

        strategy = _fit_memory(strategy, num_lanes, memory_budget_bytes, program_bytes)
    donate = donates_by_default(available[0].platform) if donate is None else donate
    return ExecutionPlan(strategy, num_lanes, devices_for(strategy, num_lanes, available),
                         precision, donate, streamed)


def _fit_memory(strategy: Strategy, num_lanes: int, budget: int, program_bytes) -> Strategy:
    lanes = min(strategy.lanes_per_program or num_lanes, num_lanes)
    while True:
        candidate = dataclasses.replace(strategy, lanes_per_program=lanes)
        needed = program_bytes(candidate)
        if needed <= budget:
            break
        if lanes == 1:
            raise ValueError(f"one lane needs {needed / 2**20:.0f} MiB per dispatch, over the "
                             f"memory budget of {budget / 2**20:.0f} MiB; lower batch_size or "
                             "raise config.memory_budget_gb")
        lanes = -(-lanes // 2)
    logging.info("memory budget %.3g GiB: %d of %d lanes per program (%.0f MiB per dispatch)",
                 budget / 2**30, lanes, num_lanes, needed / 2**20)
    if lanes == (strategy.lanes_per_program or num_lanes):
        return strategy
    return dataclasses.replace(strategy, lanes_per_program=lanes)


def make_plan(choice: StrategyChoice, num_lanes: int, batch_size: int, *,
              precision: str = "default", streamed: bool = False,
              memory_budget_bytes: int = 0, memory_probe: MemoryProbe | None = None,
              devices=None, has_conv: bool = True, timer: StrategyTimer | None = None,
              model_fingerprint: str = "", num_seeds: int = 1,
              resumed: Strategy | None = None) -> ExecutionPlan:
    """The plan of a run's strategy `choice` for `num_lanes` lanes at `batch_size` on this
    process's devices; `streamed`: the data come from a host pipeline.

    `memory_probe`: how to measure a dispatch's bytes (needed only with a memory budget);
    `has_conv`: whether the model has convolutions ('auto' chooses by it on a CPU).
    Under strategy.preset='tune' the strategy is measured for the model at hand
    (tune.tuned_plan): `timer` times a candidate plan, `model_fingerprint` and `num_seeds`
    key the cache of tuned choices, and `resumed` is the strategy a resumed run started with
    (kept: its timings could differ now). Every model takes the plan's convolution: the
    built-in ones receive it as their layer, a user's `nn.Conv` layers are intercepted
    (models/conv.py: follow_plan).
    """
    available = list(jax.local_devices() if devices is None else devices)
    # ('tune': 'auto''s choice, its first candidate.)
    strategy = choice.resolve(batch_size, num_lanes, available[0].platform, len(available),
                              has_conv)

    def plan_of(strategy: Strategy, tuning: Tuning | None = None) -> ExecutionPlan:
        plan = plan_for(strategy, num_lanes, precision=precision, devices=available,
                        streamed=streamed, memory_budget_bytes=memory_budget_bytes,
                        memory_probe=memory_probe)
        return plan if tuning is None else dataclasses.replace(plan, tuning=tuning)

    if choice.preset != "tune":
        return plan_of(strategy)
    if timer is None:
        raise ValueError("strategy.preset='tune' times candidate plans: make_plan needs a "
                         "timer (tune.StrategyTimer)")
    return tuned_plan(choice, strategy, plan_of, timer=timer,
                      model_fingerprint=model_fingerprint, has_conv=has_conv,
                      num_seeds=num_seeds, num_lanes=num_lanes, batch_size=batch_size,
                      precision=precision, streamed=streamed,
                      memory_budget_bytes=memory_budget_bytes, devices=available,
                      resumed=resumed)
