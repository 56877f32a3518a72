"""Small measuring tools: percentiles, process memory, and how busy the machine was.

The benchmark runs on a shared 2-core machine, so every phase also records how much CPU other
processes used while it ran; a number taken while other work held the cores says so.
"""

from __future__ import annotations

import os
import resource
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np


def pct(values, q: float) -> float | None:
    values = [v for v in values if v is not None]
    return round(float(np.percentile(values, q)), 2) if values else None


def summary(values) -> dict:
    values = [v for v in values if v is not None]
    if not values:
        return {"n": 0}
    return {
        "n": len(values),
        "p50": pct(values, 50),
        "p95": pct(values, 95),
        "p99": pct(values, 99),
        "mean": round(float(np.mean(values)), 2),
        "min": round(float(np.min(values)), 2),
        "max": round(float(np.max(values)), 2),
    }


def proc_status(pid: int | str = "self") -> dict[str, float]:
    """VmRSS (now) and VmHWM (peak) of a process in MB, from /proc."""
    out = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = round(int(rest.split()[0]) / 1024, 1)
    except (OSError, ValueError, IndexError):
        pass
    return out


def tree_rss_mb(pid: int) -> float:
    """RSS of a process and all its descendants (a server may fork helpers), in MB."""
    total = 0.0
    seen = {pid}
    stack = [pid]
    while stack:
        p = stack.pop()
        total += proc_status(p).get("VmRSS", 0.0)
        try:
            for task in Path(f"/proc/{p}/task").iterdir():
                for child in (task / "children").read_text().split():
                    if int(child) not in seen:
                        seen.add(int(child))
                        stack.append(int(child))
        except OSError:
            pass
    return round(total, 1)


def _busy_seconds() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    hz = os.sysconf("SC_CLK_TCK")
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / hz, sum(fields[:8]) / hz


def process_cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system) a process has used so far, from /proc; 0 when gone."""
    try:
        parts = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(parts[11]) + int(parts[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def _own_cpu_seconds(extra_pids: tuple[int, ...] = ()) -> float:
    own = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        r = resource.getrusage(who)
        own += r.ru_utime + r.ru_stime
    return own + sum(process_cpu_seconds(pid) for pid in extra_pids)


@dataclass
class MachineLoad:
    """CPU used by other processes during a phase, in cores (0 = machine was ours alone)."""

    started: float = 0.0
    busy0: float = 0.0
    own0: float = 0.0
    pids: tuple[int, ...] = ()

    @classmethod
    def start(cls, pids: tuple[int, ...] = ()) -> MachineLoad:
        busy, _ = _busy_seconds()
        return cls(time.monotonic(), busy, _own_cpu_seconds(pids), pids)

    def stop(self) -> dict:
        wall = time.monotonic() - self.started
        busy, _ = _busy_seconds()
        own = _own_cpu_seconds(self.pids) - self.own0
        others = max(0.0, (busy - self.busy0) - own)
        return {
            "seconds": round(wall, 1),
            "bench_cores": round(own / wall, 2) if wall else None,
            "other_cores": round(others / wall, 2) if wall else None,
            "loadavg_1m": round(os.getloadavg()[0], 2),
        }


def machine() -> dict:
    """What the numbers were measured on."""
    import platform
    from importlib.metadata import PackageNotFoundError, version

    def ver(name: str) -> str | None:  # read from the installed metadata: nothing imported
        try:
            return version(name)
        except PackageNotFoundError:
            return None

    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = 0.0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "ram_gb": round(mem, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
        "torch": ver("torch"),  # the torch floor only; the app runs onnxruntime
        "onnxruntime": ver("onnxruntime"),
        "chromadb": ver("chromadb"),
        "gradio": ver("gradio"),
        "fastapi": ver("fastapi"),
        "uvicorn": ver("uvicorn"),
    }
