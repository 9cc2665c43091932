"""Faults injected into real runs, and what came out: the table of docs/reliability.md.

    python docs/probes/fault_injection.py --out /tmp/faults [--kills 8] [--seed 0]

Every fault is injected into the command a user runs (`python -m experiments.lr_sweep` or
`experiments.batch_sweep` on the embedded digits: small CNN, m = 8, 6 epochs, two η̃),
then the same command is run again until it finishes; its files are compared with those of
an uninterrupted run (every CSV cell but the wall times, state.msgpack byte for byte).

Faults: SIGKILL at uniformly random moments (several in a row on the same run), SIGKILL
inside Orbax's rename of checkpoint k, the newest checkpoint damaged after a kill (truncated
files, a flipped byte), the disk full mid-run (a 200 KiB tmpfs, grown afterwards: needs
root, else skipped), two processes on one run directory, and bad input (a batch size larger
than the data, a config that differs from the checkpoint's, a damaged data file).
"""

import argparse
import csv
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RUN = ["--config=configs/default.py", "--config.epochs=6", "--config.batch_size=8",
       "--config.base_lrs=(0.001953125, 0.0078125)"]
TIMING = {"wall_seconds", "epoch_seconds"}
KILL_IN_SAVE = """
import os, runpy, signal, sys
from orbax.checkpoint._src.path import atomicity
calls, finalize = [0], atomicity.AtomicRenameTemporaryPath.finalize
async def killing_finalize(self, *args, **kwargs):
    calls[0] += self.get_final().name.isdigit()
    if calls[0] == int(os.environ["KILL_AT_SAVE"]):
        os.kill(os.getpid(), signal.SIGKILL)
    return await finalize(self, *args, **kwargs)
atomicity.AtomicRenameTemporaryPath.finalize = killing_finalize
sys.argv = sys.argv[1:]
runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
"""


def command(module, workdir, *extra):
    return [sys.executable, "-m", module, *RUN, *extra, f"--workdir={workdir}"]


def run(cmd, env=None):
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, env=env)


def kill_after_epochs(cmd, epochs, delay):
    """Runs `cmd`; SIGKILLs it `delay` seconds after its `epochs`-th epoch line (counting
    from wherever it resumed), unless it ended first; True if killed."""
    process = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    seen = 0
    for line in process.stderr:
        if " epoch " in line and "/" in line.split(" epoch ")[1][:6]:
            seen += 1
            if seen == epochs:
                time.sleep(delay)
                process.send_signal(signal.SIGKILL)
                break
    process.wait()
    return process.returncode == -signal.SIGKILL


def rows(path):
    with open(path) as f:
        return [{k: v for k, v in r.items() if k not in TIMING} for r in csv.DictReader(f)]


def compare(run_dir, reference):
    """(files that differ, rows lost) of a run against the reference run."""
    differ, lost = [], 0
    for name in ("results.csv", "curves.csv"):
        got, want = rows(os.path.join(run_dir, name)), rows(os.path.join(reference, name))
        lost += max(len(want) - len(got), 0)
        if got != want:
            differ.append(name)
    with open(os.path.join(run_dir, "state.msgpack"), "rb") as a, \
            open(os.path.join(reference, "state.msgpack"), "rb") as b:
        if a.read() != b.read():
            differ.append("state.msgpack")
    left = sorted(set(os.listdir(run_dir)) - {".lock", "config.json", "curves.csv",
                                               "results.csv", "state.msgpack"})
    return differ + [f"left: {name}" for name in left], lost


def damage_newest(run_dir, how):
    checkpoints = os.path.join(run_dir, "checkpoints")
    steps = sorted((int(d) for d in os.listdir(checkpoints) if d.isdigit()))
    if not steps:
        return None
    newest = os.path.join(checkpoints, str(steps[-1]))
    for root, _, names in os.walk(newest):
        for name in names:
            path = os.path.join(root, name)
            if "/d/" not in path:
                continue
            data = bytearray(open(path, "rb").read())
            if how == "truncate":
                data = data[:len(data) // 2]
            else:
                data[len(data) // 2] ^= 0xFF
            open(path, "wb").write(bytes(data))
    return steps[-1]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--kills", type=int, default=8, help="random-moment SIGKILL runs")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    shutil.rmtree(args.out, ignore_errors=True)
    os.makedirs(args.out)
    table = []

    def record(kind, how, times, run_dirs, reference, resumed, note=""):
        differ, lost = [], 0
        for run_dir, ref in zip(run_dirs, reference):
            d, l = compare(run_dir, ref)
            differ += d
            lost += l
        table.append({"kind": kind, "how": how, "times": times, "runs": len(run_dirs),
                      "resumed": resumed, "differ": differ, "rows_lost": lost, "note": note})
        print(json.dumps(table[-1]), flush=True)

    # The uninterrupted references, timed (the random moments are drawn within them): from
    # a second before the first epoch ends (most of a short run is starting and compiling,
    # where a kill finds no checkpoint) to the end.
    ref = os.path.join(args.out, "reference")
    start = time.perf_counter()
    process = subprocess.Popen(command("experiments.lr_sweep", ref), cwd=REPO,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    first_epoch = None
    for line in process.stderr:
        if first_epoch is None and "epoch 1/" in line:
            first_epoch = time.perf_counter() - start
    assert process.wait() == 0
    ref_seconds = time.perf_counter() - start
    sweep_ref = os.path.join(args.out, "sweep_reference")
    start = time.perf_counter()
    assert run(command("experiments.batch_sweep", sweep_ref,
                       "--config.batch_sizes=(8, 32)")).returncode == 0
    sweep_seconds = time.perf_counter() - start
    print(f"reference run {ref_seconds:.1f} s (first epoch done at {first_epoch:.1f} s), "
          f"sweep {sweep_seconds:.1f} s", flush=True)

    # 1. SIGKILL at random moments of training, 1–3 times in a row on the same run, then to
    # the end: after 1–2 epoch lines of the process, plus a random fraction of an epoch.
    epoch_seconds = (ref_seconds - first_epoch) / 5
    run_dirs, kills, resumed = [], 0, 0
    for i in range(args.kills):
        work = os.path.join(args.out, f"random{i}")
        for _ in range(rng.randint(1, 3)):
            kills += kill_after_epochs(command("experiments.lr_sweep", work),
                                       rng.randint(1, 2), rng.uniform(0, epoch_seconds))
        done = run(command("experiments.lr_sweep", work))
        assert done.returncode == 0, done.stderr[-2000:]
        resumed += "resumed from" in done.stderr
        run_dirs.append(work)
    record("SIGKILL", "lr_sweep, 1–2 epochs into the process plus U(0, 1 epoch), 1–3 times "
           "per run",
           kills, run_dirs, [ref] * len(run_dirs), resumed)

    # 2. SIGKILL inside Orbax's rename of checkpoint k (written, not yet in place).
    run_dirs, resumed = [], 0
    for k in (1, 2, 3):
        work = os.path.join(args.out, f"in_save{k}")
        killed = run([sys.executable, "-c", KILL_IN_SAVE,
                      *command("experiments.lr_sweep", work)[2:]],
                     env=dict(os.environ, KILL_AT_SAVE=str(k)))
        assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
        done = run(command("experiments.lr_sweep", work))
        assert done.returncode == 0, done.stderr[-2000:]
        resumed += "resumed from" in done.stderr
        run_dirs.append(work)
    record("SIGKILL", "lr_sweep, inside the rename that completes checkpoint 1, 2, 3", 3,
           run_dirs, [ref] * 3, resumed)

    # 3. The newest checkpoint damaged after a kill: the one before is used.
    run_dirs, resumed, notes = [], 0, []
    for how in ("truncate", "flip"):
        work = os.path.join(args.out, f"damaged_{how}")
        killed = run([sys.executable, "-c", KILL_IN_SAVE,
                      *command("experiments.lr_sweep", work)[2:]],
                     env=dict(os.environ, KILL_AT_SAVE="3"))
        assert killed.returncode == -signal.SIGKILL
        step = damage_newest(work, how)
        done = run(command("experiments.lr_sweep", work))
        assert done.returncode == 0, done.stderr[-2000:]
        resumed += "resumed from" in done.stderr
        skipped = [line.split("cannot be read")[1][:80] for line in done.stderr.splitlines()
                   if "cannot be read" in line]
        notes.append(f"{how}: checkpoint {step} skipped ({skipped[0].strip() if skipped else 'NOT skipped'})")
        run_dirs.append(work)
    record("damaged checkpoint", "newest checkpoint's array files truncated / one byte "
           "flipped, after a kill", 2, run_dirs, [ref] * 2, resumed, "; ".join(notes))

    # 4. SIGKILL of a batch sweep at random moments.
    run_dirs, kills, resumed = [], 0, 0
    for i in range(max(args.kills // 2, 1)):
        work = os.path.join(args.out, f"sweep{i}")
        cmd = command("experiments.batch_sweep", work, "--config.batch_sizes=(8, 32)")
        # Any of the 12 epoch lines of the two runs, plus a fraction of an epoch.
        kills += kill_after_epochs(cmd, rng.randint(1, 11), rng.uniform(0, epoch_seconds))
        done = run(cmd)
        assert done.returncode == 0, done.stderr[-2000:]
        resumed += "resumed from" in done.stderr
        run_dirs += [os.path.join(work, "m8"), os.path.join(work, "m32")]
        assert rows(os.path.join(work, "results.csv")) == rows(
            os.path.join(sweep_ref, "results.csv"))
    record("SIGKILL", "batch_sweep (m = 8, 32), after a random one of its 12 epoch lines "
           "plus U(0, 1 epoch)", kills,
           run_dirs, [os.path.join(sweep_ref, f"m{m}") for _ in range(len(run_dirs) // 2)
                      for m in (8, 32)], resumed, "merged results.csv equal too")

    # 5. The disk full mid-run, then grown: a clear error, then a resume.
    full = os.path.join(args.out, "full")
    os.makedirs(full)
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=200k", "tmpfs", full],
                      capture_output=True).returncode == 0:
        try:
            work = os.path.join(full, "run")
            failed = run(command("experiments.lr_sweep", work))
            message = next((line for line in failed.stderr.splitlines()
                            if "WorkdirError" in line), failed.stderr.strip().splitlines()[-1])
            subprocess.run(["mount", "-o", "remount,size=20m", full], check=True)
            done = run(command("experiments.lr_sweep", work))
            assert done.returncode == 0, done.stderr[-2000:]
            record("disk full", "lr_sweep on a 200 KiB tmpfs, then the tmpfs grown to 20 MiB",
                   1, [work], [ref], int("resumed from" in done.stderr),
                   f"exit {failed.returncode}: {message[:160]}")
        finally:
            subprocess.run(["umount", full])
    else:
        print("disk full: skipped (mounting a tmpfs needs root)", flush=True)

    # 6. Two processes on one run directory.
    work = os.path.join(args.out, "two")
    first = subprocess.Popen(command("experiments.lr_sweep", work), cwd=REPO,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(5)
    start = time.perf_counter()
    second = run(command("experiments.lr_sweep", work))
    second_seconds = time.perf_counter() - start
    first.wait()
    record("second process", "lr_sweep started again on a run directory in use", 1, [work],
           [ref], 0, f"second exit {second.returncode} after {second_seconds:.1f} s: "
           f"{second.stderr.strip().splitlines()[-1][:140]}")

    # 7. Bad input: each must fail before training, with the key or the file named.
    bad = []
    sweep_dir = os.path.join(args.out, "too_big")
    done = run(command("experiments.batch_sweep", sweep_dir, "--config.batch_sizes=(64, 4096)"))
    bad.append(("batch_sizes=(64, 4096) on 1438 examples", done.returncode,
                not os.path.exists(os.path.join(sweep_dir, "m64")),
                done.stderr.strip().splitlines()[-1]))
    done = run(command("experiments.lr_sweep", os.path.join(args.out, "random0"),
                       "--config.seed=3", "--config.epochs=6"))
    bad.append(("a finished run's workdir with another config (no checkpoint left)",
                done.returncode, True, done.stderr.strip().splitlines()[-1]))
    mismatch = os.path.join(args.out, "mismatch")
    kill_after_epochs(command("experiments.lr_sweep", mismatch), 2, 0.0)
    done = run(command("experiments.lr_sweep", mismatch, "--config.seed=3"))
    bad.append(("a checkpoint's workdir with another seed", done.returncode,
                "differing keys" in done.stderr, done.stderr.strip().splitlines()[-1]))
    npz = os.path.join(args.out, "broken.npz")
    with open(npz, "wb") as f:
        f.write(b"PK\x03\x04 not really a zip")
    done = run(command("experiments.lr_sweep", os.path.join(args.out, "npz"),
                       "--config.dataset=cifar10", f"--config.data_dir={npz}"))
    bad.append(("a damaged .npz data file", done.returncode, True,
                done.stderr.strip().splitlines()[-1]))

    with open(os.path.join(args.out, "faults.json"), "w") as f:
        json.dump({"faults": table, "bad_input": bad, "reference_seconds": ref_seconds},
                  f, indent=2)
    print("\n| fault | how | times | runs | resumed | results that differ | rows lost | note |")
    print("|---|---|---|---|---|---|---|---|")
    for t in table:
        print(f"| {t['kind']} | {t['how']} | {t['times']} | {t['runs']} | {t['resumed']} | "
              f"{len(t['differ'])} | {t['rows_lost']} | {t['note']} |")
    print("\n| bad input | exit code | before training | message |\n|---|---|---|---|")
    for what, code, before, message in bad:
        print(f"| {what} | {code} | {before} | {message[:200]} |")


if __name__ == "__main__":
    main()
