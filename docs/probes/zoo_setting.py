"""What the zoo probes (kernel_gradient_step.py, dense_rows_step.py) read from their command
line: MODEL M [--repeats=R], and the setting they time it in: K = 13 lanes, enough steps a
repeat for ~512 examples, synthetic data of the model's own input shape."""

import dataclasses
import sys

from smallbatch_jax.diagnostics import timing, zoo


@dataclasses.dataclass(frozen=True)
class ZooSetting:
    name: str  # a name of diagnostics/zoo.py
    m: int
    repeats: int
    model: str  # its import path
    shape: tuple
    kind: str  # its input kind
    lanes: int
    steps: int
    data: object  # synthetic, m × steps training examples


def zoo_setting(argv=None) -> ZooSetting:
    argv = sys.argv[1:] if argv is None else argv
    args = [a for a in argv if not a.startswith("--")]
    repeats = next((int(a.split("=")[1]) for a in argv if a.startswith("--repeats=")), 5)
    name, m = args[0], int(args[1])
    model, shape, kind = zoo.ZOO[name]
    steps = max(4, 512 // m)
    return ZooSetting(name, m, repeats, model, shape, kind, 13, steps,
                      timing.synthetic_dataset(shape, 10, m * steps, input_kind=kind))
