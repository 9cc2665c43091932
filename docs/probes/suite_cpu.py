"""Where the test suite's CPU goes, test by test, its subprocesses included.

Wall-clock durations (`pytest --durations`) mislead on a 2-core machine: two workers share
the cores, and a test that waits on a subprocess shows the subprocess's time as its own
while its worker idles. This pytest plugin records, at each test's start and end, the
worker's own CPU time and that of its finished children (the entry points' processes), so
the CPU a test costs is what the suite's wall time is made of.

    # the suite, recorded (the plugin is loaded from this directory):
    rm -f /tmp/suite_cpu_*.jsonl
    PYTHONPATH=docs/probes python -m pytest -q -p suite_cpu
    # the tests by CPU seconds, and per file:
    python docs/probes/suite_cpu.py [/tmp/suite_cpu_*.jsonl]
"""

import collections
import glob
import json
import os
import resource
import sys
import time

PATTERN = "/tmp/suite_cpu_{worker}.jsonl"
RECORDING = True


def _cpu() -> tuple[float, float]:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)  # (waited-for ones only)
    return own.ru_utime + own.ru_stime, children.ru_utime + children.ru_stime


def pytest_configure(config):
    # Under pytest-xdist the controller sees every test's report too, with none of its CPU:
    # the workers record (or the one process without xdist).
    global RECORDING
    controller = getattr(config.option, "numprocesses", None) and not hasattr(config,
                                                                              "workerinput")
    RECORDING = not controller


def _record(event: str, nodeid: str) -> None:
    if not RECORDING:
        return
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    with open(PATTERN.format(worker=worker), "a") as f:
        f.write(json.dumps([time.time(), event, nodeid, *_cpu()]) + "\n")


def pytest_runtest_logstart(nodeid, location):
    _record("start", nodeid)


def pytest_runtest_logfinish(nodeid, location):
    _record("end", nodeid)


def summarize(paths: list[str], top: int = 40) -> None:
    rows = []
    for path in paths:
        started = {}
        for when, event, nodeid, own, children in map(json.loads, open(path)):
            if event == "start":
                started[nodeid] = when, own, children
            else:
                when0, own0, children0 = started.pop(nodeid)
                rows.append((own - own0 + children - children0, own - own0,
                             children - children0, when - when0, nodeid))
    rows.sort(reverse=True)
    print(f"tests {len(rows)}: CPU {sum(r[0] for r in rows):.1f} s "
          f"(in the workers {sum(r[1] for r in rows):.1f}, "
          f"in subprocesses {sum(r[2] for r in rows):.1f})")
    print("   CPU s   own  subproc   wall  test")
    for cpu, own, children, wall, nodeid in rows[:top]:
        print(f"{cpu:8.1f} {own:5.1f} {children:8.1f} {wall:6.1f}  {nodeid}")
    per_file = collections.Counter()
    for cpu, *_, nodeid in rows:
        per_file[nodeid.split("::")[0]] += cpu
    print("\n   CPU s  file")
    for name, cpu in per_file.most_common(20):
        print(f"{cpu:8.1f}  {name}")


if __name__ == "__main__":
    import signal
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # (piped into head: stop quietly)
    summarize(sys.argv[1:] or sorted(glob.glob(PATTERN.format(worker="*"))))
