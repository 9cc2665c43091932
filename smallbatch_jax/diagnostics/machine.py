"""The machine a measurement ran on, and what travels to and from it.

- `machine_description`: the device, the software, the date and the XLA flags, for a reader
  to place the figures; `device_memory`: the device's memory in use and at its peak.
- `carried_cifar10`: the CIFAR-10 subset carried to the device (random images of its shapes
  where it is missing).
- `pack` / `unpack_cache`: directories as .tar.gz archives small enough for the device tool
  to bring back (the sweeps' workdirs, the profiles, the compilation cache), and an earlier
  check's compilation cache unpacked for the next.
"""

import os
import subprocess
import tarfile
import time

import jax
import jaxlib

from smallbatch_jax.data import load_dataset
from smallbatch_jax.diagnostics.timing import synthetic_dataset

CACHE_ARCHIVE = "jax_cache.tar.gz"


def machine_description() -> dict:
    """The device, the software, the date: what a reader needs to place the figures."""
    device = jax.devices()[0]
    described = {"platform": device.platform, "device_kind": device.device_kind,
                 "num_devices": jax.device_count(), "jax": jax.__version__,
                 "jaxlib": jaxlib.__version__, "date": time.strftime("%Y-%m-%d %H:%M %Z"),
                 "xla_flags": os.environ.get("XLA_FLAGS", "")}
    try:
        described["nvidia_smi"] = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,driver_version,memory.total,clocks.max.sm",
             "--format=csv,noheader"], capture_output=True, text=True, timeout=20).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return described


def device_memory() -> dict | None:
    """The first device's memory (MiB): at its peak, in use, and its limit; None where the
    device does not say (a CPU)."""
    stats = jax.local_devices()[0].memory_stats()
    if not stats:
        return None
    return {key: stats[key] / 2**20 for key in ("peak_bytes_in_use", "bytes_in_use",
                                                 "bytes_limit") if key in stats}


def carried_cifar10(data_path: str, log, missing: str):
    """The CIFAR-10 subset at `data_path` (carried to the device: experiments/gpu_carry.sh);
    where it is missing, random images of its shapes, after logging `missing`."""
    if os.path.isfile(data_path):
        return load_dataset("cifar10", data_path)
    log(f"{data_path} is missing: {missing}")
    return synthetic_dataset((32, 32, 3), 10, 5085)


def pack(directory: str, path: str, max_mib: float = 15.0,
         leave_out: tuple[str, ...] = ("state.msgpack", ".xplane.pb")) -> bool:
    """`directory` as a .tar.gz at `path`, replaced whole (a reader never sees half),
    without files ending in `leave_out` (a trained state: 25 MB per AlexNet m; raw
    profiles: their summaries are in the record). An archive over `max_mib` (what the
    device tool brings back) is not written; returns whether it was."""
    if not os.path.isdir(directory):
        return False
    skip = lambda info: None if info.name.endswith(leave_out) else info
    temporary = f"{path}.tmp{os.getpid()}"
    with tarfile.open(temporary, "w:gz") as tar:
        tar.add(directory, arcname=os.path.basename(directory), filter=skip)
    if os.path.getsize(temporary) > max_mib * 2**20:
        os.remove(temporary)
        return False
    os.replace(temporary, path)
    return True


def unpack_cache(archive: str, cache_dir: str) -> int:
    """Compiled programs of an earlier check (its OUTDIR/{CACHE_ARCHIVE}, carried back to the
    device) into `cache_dir`: on the same kind of device and jax they are served from there,
    so that a check's minutes go to measuring rather than compiling. Returns how many files."""
    if not (archive and cache_dir and os.path.isfile(archive)):
        return 0
    with tarfile.open(archive) as tar:
        members = [member for member in tar.getmembers() if member.isfile()]
        for member in members:
            # The archive holds one folder (pack()'s arcname): its files go into cache_dir.
            member.name = os.path.join(*member.name.split("/")[1:])
        tar.extractall(cache_dir, members=members, filter="data")
    return len(members)
