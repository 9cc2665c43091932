"""The lane trainer: one lane's math (step.py) compiled for K lanes (programs.py), run in the
plan's groups on its devices (lane_groups.py), on batches from a source (batches.py).

`LaneTrainer.train_epoch` runs one epoch of every live group; dispatches go out step-major
(every group's first dispatch, then every group's second, …), so groups on different devices
run concurrently and a streamed batch is read from the host once. It may also evaluate at
points inside the epoch (steps to a target, measured finer than an epoch): the epoch is cut
into near-equal parts, each dispatched as the plan says, so the steps and their results are
those of an uncut epoch. `evaluate` runs the test split through every live group, issuing
every batch before reading any result. The epoch loop with its history and hooks is loop.py.
"""


import jax
import jax.numpy as jnp
import numpy as np

from smallbatch_jax.engine import lane_groups
from smallbatch_jax.engine.lanes import LaneHparams
from smallbatch_jax.engine.plan import ExecutionPlan
from smallbatch_jax.engine.programs import Programs
from smallbatch_jax.engine.state import LaneState, TrainState
from smallbatch_jax.engine.step import LaneStep
from smallbatch_jax.noise_scale import probe_groups


class LaneTrainer:
    """The compiled programs of one model, batch size, data shape and number of seeds, run
    as `plan` says."""

    def __init__(self, lane_step: LaneStep, plan: ExecutionPlan, *, num_seeds: int = 1,
                 augment: bool = False, compact: bool = True):
        self.lane_step, self.plan = lane_step, plan
        self.num_seeds, self.augment = num_seeds, augment
        self.compact = compact  # diverged lanes left out of the programs (lane_groups.py)
        self.programs = Programs(lane_step, plan, num_seeds, augment)

    @property
    def traces(self):
        return self.programs.traces

    @property
    def has_batch_norm(self) -> bool:
        return self.lane_step.has_batch_norm

    @property
    def devices(self) -> list:
        return list(self.plan.devices)

    def init(self, seeds: jax.Array, hparams: LaneHparams) -> TrainState:
        return self.programs.init(seeds, hparams)

    def start(self, seeds: jax.Array, hparams: LaneHparams, source):
        """Initial state, hyperparameters and batch source, placed for the plan: an
        in-memory data set goes to the device(s), a streamed one stays on the host. Lanes of
        a partitioned program are padded (lane_groups.pad_for)."""
        if source.one_data_order and self.num_seeds != 1:
            raise ValueError(f"{source.dataset.name} is streamed: one data order per program, "
                             "so num_seeds must be 1 (run each seed as its own sweep)")
        hparams = lane_groups.pad_for(self.plan, hparams)
        state, hparams = lane_groups.place(self.plan, self.init(seeds, hparams), hparams)
        return state, hparams, source.place(lambda tree: lane_groups.put_everywhere(self.plan,
                                                                                    tree))

    def with_loss_limits(self, state: TrainState, source, multiple: float) -> TrainState:
        """`state` with each lane's `loss_limit` (engine/step.py) set to `multiple` times its
        mean test loss now (at initialization: one evaluation, exact, unlike one batch's
        loss at m = 1). A lane whose initial loss is not finite or not positive (a loss that
        can be negative, e.g. a Gaussian negative log-likelihood) gets no limit: only
        non-finite values mark it diverged."""
        _, initial = self.evaluate(state.lanes, source)
        usable = np.isfinite(initial) & (initial > 0)
        limit = np.where(usable, multiple * initial, np.inf)
        # Placed like the array it replaces, committed or not: a committed leaf where the
        # programs' outputs are uncommitted would compile the training program again.
        old = state.lanes.loss_limit
        limit = (jax.device_put(limit.astype(np.float32), old.sharding) if old.committed
                 else jnp.asarray(limit, jnp.float32))
        return state.replace(lanes=state.lanes.replace(loss_limit=limit))

    def train_epoch(self, state: TrainState, hparams: LaneHparams, source, seeds: jax.Array,
                    total_steps: int, evals_per_epoch: int = 1
                    ) -> tuple[TrainState, np.ndarray, list[tuple[int, np.ndarray, np.ndarray]]]:
        """One epoch of every live group; returns the new state, each lane's mean training
        loss (NaN for a skipped group of diverged lanes) and the evaluations inside the epoch,
        [(step, test metric, test loss)] per lane (`evals_per_epoch` − 1 of them, at
        `plan.evaluation_points`; the epoch's end is the caller's to evaluate). With donation,
        `state` is used up."""
        groups = lane_groups.live_groups(self.plan, state.lanes, compact=self.compact)
        lanes = [lane_groups.take(state.lanes, g) for g in groups]
        group_hparams = [lane_groups.take(hparams, g) for g in groups]
        group_seeds = [lane_groups.on(g.device, seeds) for g in groups]
        lengths, points = self.plan.epoch_dispatches(source.steps_per_epoch, evals_per_epoch)
        losses = [0] * len(groups)
        step = first_step = int(state.step)
        num_lanes = state.lanes.diverged.shape[0]
        put = lambda tree: lane_groups.put_everywhere(self.plan, tree)
        local = {}  # each device's copy of the epoch's data and order, made once
        evaluations = []
        for num_steps, dispatch in source.epoch(seeds, int(state.epoch), lengths, put):
            for i, group in enumerate(groups):
                lanes[i], loss = self.programs.train(
                    lanes[i], group_hparams[i], lane_groups.on(group.device, dispatch, local),
                    group_seeds[i], np.int32(step), np.int32(total_steps), num_steps=num_steps)
                losses[i] = losses[i] + loss
            step += num_steps
            if step - first_step in points[:-1]:
                evaluations.append((step, *self._evaluate_groups(groups, lanes, source,
                                                                 num_lanes)))
        mean_loss = np.full(num_lanes, np.nan)
        for group, loss in zip(groups, losses):
            positions = group.positions
            mean_loss[positions] = (np.asarray(loss) / source.steps_per_epoch)[:len(positions)]
        trained = dict(zip(groups, lanes))
        state = TrainState(lane_groups.assemble(self.plan, state.lanes, trained),
                           step=state.step + source.steps_per_epoch, epoch=state.epoch + 1)
        return state, mean_loss, evaluations

    def evaluate(self, lanes: LaneState, source) -> tuple[np.ndarray, np.ndarray]:
        """The test metric (objectives.py; accuracy by default) and mean test loss of every
        lane, with running BN statistics (NaN for a lane that diverged)."""
        groups = lane_groups.live_groups(self.plan, lanes, compact=self.compact)
        return self._evaluate_groups(groups, [lane_groups.take(lanes, g) for g in groups],
                                     source, lanes.diverged.shape[0])

    def _evaluate_groups(self, groups, group_lanes, source, num_lanes: int
                         ) -> tuple[np.ndarray, np.ndarray]:
        """`evaluate` of the groups' lanes (each group's on its device); NaN elsewhere, and
        for a lane that diverged."""
        sums = [[] for _ in groups]  # every batch is issued before any result is read
        local = {}
        for batch in source.test_batches():
            for i, group in enumerate(groups):
                sums[i].append(self.programs.evaluate(
                    group_lanes[i], lane_groups.on(group.device, batch, local)))
        metric, loss = np.full(num_lanes, np.nan), np.full(num_lanes, np.nan)
        for group, batches, lanes in zip(groups, sums, group_lanes):
            positions = group.positions  # (a partitioned program's padding lanes dropped)
            diverged = np.asarray(lanes.diverged)[:len(positions)]
            group_metric = sum(np.asarray(c) for c, _ in batches)[:len(positions)]
            group_loss = sum(np.asarray(l) for _, l in batches)[:len(positions)]
            metric[positions] = np.where(diverged, np.nan, group_metric / source.num_test)
            loss[positions] = np.where(diverged, np.nan, group_loss / source.num_test)
        return metric, loss

    def gradient_moments(self, lanes: LaneState, hparams: LaneHparams, probe_batch
                         ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every lane's noise-scale probe (noise_scale.py, LaneStep.gradient_moments): mean
        |G_small|² and |G_big|² (K,) and their leave-one-group-out values (K, k, 2); NaN for a
        skipped group of diverged lanes. `probe_batch`: a host ProbeBatch."""
        num_lanes = lanes.diverged.shape[0]
        groups = lane_groups.live_groups(self.plan, lanes, at_home=True, compact=self.compact)
        probe_batch = lane_groups.put_everywhere(self.plan, probe_batch)
        local, moments = {}, []
        for group in groups:  # every group is issued before any result is read
            moments.append(self.programs.probe(
                lane_groups.take(lanes, group), lane_groups.take(hparams, group),
                lane_groups.on(group.device, probe_batch, local)))
        k = probe_groups(probe_batch.images.shape[1])  # (S, n, b, ...): n batches
        small, big = np.full(num_lanes, np.nan), np.full(num_lanes, np.nan)
        left_out = np.full((num_lanes, k, 2), np.nan)
        for group, (s, b, left) in zip(groups, moments):
            positions = group.positions
            small[positions] = np.asarray(s)[:len(positions)]
            big[positions] = np.asarray(b)[:len(positions)]
            left_out[positions] = np.asarray(left)[:len(positions)]
        return small, big, left_out
