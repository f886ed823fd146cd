"""Server processes started by the benchmark: launch, readiness, CPU and memory accounting, stop by PID.

CPU is read from `/proc/<pid>/stat` (utime + stime) of the server's whole process tree (a uvicorn
supervisor and its workers, nginx's master and worker), so a multi-process server is charged for
every process. Memory is the sum of each process's VmHWM (peak resident set), which counts pages
shared between a supervisor and its forked workers more than once: an upper bound.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK")
# Every server started, in order, so a failed or interrupted run still stops each one.
STARTED: list[Server] = []


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _children_map() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    return children


def process_tree(root: int) -> list[int]:
    """`root` and all its live descendants."""
    children = _children_map()
    found = [root]
    for pid in found:
        found.extend(children.get(pid, ()))
    return found


def start_time(pid: int) -> int | None:
    """The process's start time in ticks since boot: with the PID, it names one process for good."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat[stat.rindex(")") + 2 :].split()[19])


def cpu_split(pids: list[int]) -> tuple[float, float]:
    """(user, system) CPU seconds of the listed processes (those still alive): system is the kernel's share."""
    user = system = 0
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        user, system = user + int(fields[11]), system + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return user / _TICK, system / _TICK


def cpu_seconds(pids: list[int]) -> float:
    """user + system CPU seconds of the listed processes (those still alive)."""
    return sum(cpu_split(pids))


def status_kib(pids: list[int], field: str) -> int:
    """Sum of one /proc/<pid>/status memory field (`VmRSS`, `VmHWM`, ...) over the listed processes, in KiB."""
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith(f"{field}:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total


def peak_rss_kib(pids: list[int]) -> int:
    """Sum of VmHWM (peak resident set) over the listed processes."""
    return status_kib(pids, "VmHWM")


def system_busy_seconds() -> float:
    """CPU seconds spent not idle by the whole machine since boot (all cores)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / _TICK


@dataclass
class Server:
    """A server process this benchmark started (and will stop, by PID)."""

    name: str
    command: list[str]
    log_path: Path
    env: dict[str, str] | None = None
    cwd: Path | None = None
    process: subprocess.Popen[bytes] | None = None
    pids: list[int] = field(default_factory=list)
    _identities: dict[int, int | None] = field(default_factory=dict)

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.command, stdout=log, stderr=subprocess.STDOUT, env=self.env, cwd=self.cwd
            )
        STARTED.append(self)

    def wait_ready(
        self, ready: Callable[[], bool], timeout: float, retry_on: tuple[type[BaseException], ...] = (OSError,)
    ) -> None:
        """Poll `ready` until it holds (an error in `retry_on` means not yet); raise if the server dies or stalls."""
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                if ready():
                    break
            except retry_on:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} was not ready after {timeout:.0f} s:\n{self.log_tail()}")
            time.sleep(0.2)
        # Workers are forked during start-up: settle the tree once the server answers.
        time.sleep(0.5)
        self.tree()

    def tree(self) -> list[int]:
        assert self.process is not None
        for pid in process_tree(self.process.pid):
            if pid not in self._identities:
                self._identities[pid] = start_time(pid)
        self.pids = sorted(pid for pid, started in self._identities.items() if start_time(pid) == started)
        return self.pids

    def cpu(self) -> float:
        return cpu_seconds(self.tree())

    def peak_rss_mib(self) -> float:
        return peak_rss_kib(self.tree()) / 1024

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        """SIGTERM the process we started, then SIGKILL it and any descendant we saw, each by PID."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.tree()
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        for pid, started in self._identities.items():
            # A descendant left behind, if it is still the very process we recorded (PID and start time).
            if pid != self.process.pid and started is not None and start_time(pid) == started:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


def stop_all() -> None:
    """Stop every server this process started, the last started first."""
    while STARTED:
        STARTED.pop().stop()
