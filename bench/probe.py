"""What the benchmark's no-op handler and raw Celery task do: note a completion, cheaply.

Each process appends one line per completion to its own file under BENCH_DIR: the end-to-end
latency (now - the `bench_sent` time the load generator stamped into the body), or `-` when the
body carries none. One write() per task, the same in suprhook's handler and the raw baseline."""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

_fd: int | None = None


def record(payload: dict[str, Any]) -> None:
    global _fd
    if _fd is None:
        _fd = os.open(Path(os.environ["BENCH_DIR"]) / f"done.{os.getpid()}", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    sent = payload.get("bench_sent")
    os.write(_fd, f"{time.time() - sent:.6f}\n".encode() if isinstance(sent, float) else b"-\n")


def mark_ready(name: str) -> None:
    """Called on Celery's worker_ready: the benchmark times from here, not from process start."""
    (Path(os.environ["BENCH_DIR"]) / f"ready.{name}").write_text(repr(time.time()))


def completions(bench_dir: Path) -> list[str]:
    lines: list[str] = []
    for path in bench_dir.glob("done.*"):
        lines.extend(path.read_text().split())
    return lines


def last_completion(bench_dir: Path) -> float:
    return max((p.stat().st_mtime for p in bench_dir.glob("done.*")), default=0.0)
