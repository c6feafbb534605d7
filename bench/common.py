"""Shared by the benchmarks: machine facts and the results file format."""

from __future__ import annotations

import json
import os
import platform
import subprocess
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> dict:
    info = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cores": os.cpu_count(),
    }
    try:
        cpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        info["cpu"] = next(
            (line.split(":", 1)[1].strip() for line in cpu.splitlines() if "Model name" in line), ""
        )
    except OSError:
        pass
    try:
        with open("/proc/meminfo") as fh:
            info["memory_gb"] = round(int(fh.readline().split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    try:
        import torch

        info["torch"] = torch.__version__
        info["cuda"] = torch.cuda.is_available()
    except ImportError:
        pass
    return info


def stop_process(proc: subprocess.Popen, timeout: float = 30) -> None:
    """Stop a child process: SIGTERM, then SIGKILL if it has not exited within ``timeout`` seconds."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def write_results(name: str, records: list[dict], **extra) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps({"machine": machine(), **extra, "records": records}, indent=2, default=str))
    return path
