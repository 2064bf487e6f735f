"""Processes for bench/driver.py: the dev server, worker processes, and /proc sampling."""

import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    """utime + stime of the whole process (all threads, dead ones included), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # After the ")" that ends comm: fields[0] is state (field 3), utime is field 14, stime 15.
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def status_kb(pid: int, key: str) -> int:
    """A `kB` line of /proc/PID/status, e.g. VmHWM (peak RSS) or VmRSS."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(f"{key} not in /proc/{pid}/status")


def activity_counts(pid: int) -> dict[str, int]:
    """Read and write system calls (/proc/PID/io), context switches summed over the live threads
    (/proc/PID/task/*/status), minor page faults and user and system CPU of a process: how often
    it wakes up and talks to the server, and where its CPU time is spent."""
    io = dict(line.split(": ") for line in Path(f"/proc/{pid}/io").read_text().splitlines())
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # minflt is field 10, utime 14, stime 15 (fields[0] is field 3).
    counts = {"read_calls": int(io["syscr"]), "write_calls": int(io["syscw"]),
              "voluntary_switches": 0, "involuntary_switches": 0, "minor_faults": int(stat[7]),
              "user_ms": int(stat[11]) * 1000 / CLOCK_TICKS, "system_ms": int(stat[12]) * 1000 / CLOCK_TICKS}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            text = (task / "status").read_text()
        except OSError:
            continue  # the thread ended
        for line in text.splitlines():
            key, _, value = line.partition(":")
            if key == "voluntary_ctxt_switches":
                counts["voluntary_switches"] += int(value)
            elif key == "nonvoluntary_ctxt_switches":
                counts["involuntary_switches"] += int(value)
    return counts


class Proc:
    """A child process whose stdout and stderr go to one log file, watched for a ready marker."""

    def __init__(self, name: str, argv: list[str], log: Path, ready: str, env: dict | None = None,
                 cwd: Path | None = None):
        self.name = name
        self.argv = argv
        self.log_path = log
        self._ready_marker = ready
        self.ready = threading.Event()
        self._log = open(log, "w", buffering=1)
        self.started = time.time()
        self.ready_at: float | None = None
        self.popen = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, errors="replace",
            env={**os.environ, **(env or {})}, cwd=cwd, start_new_session=True,
        )
        self.pid = self.popen.pid
        self._lock = threading.Lock()
        self._readers = [
            threading.Thread(target=self._pump, args=(stream, tag), daemon=True)
            for stream, tag in ((self.popen.stdout, "out"), (self.popen.stderr, "err"))
        ]
        for t in self._readers:
            t.start()

    def _pump(self, stream, tag: str) -> None:
        for line in stream:
            if not self.ready.is_set() and self._ready_marker in line:
                self.ready_at = time.time()
                self.ready.set()
            with self._lock:
                self._log.write(f"[{tag}] {line}")

    def wait_ready(self, timeout: float) -> None:
        deadline = time.time() + timeout
        while not self.ready.wait(0.1):
            if self.popen.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.popen.returncode} before "
                                   f"`{self._ready_marker}`; see {self.log_path}\n{self.tail()}")
            if time.time() > deadline:
                raise RuntimeError(f"{self.name} not ready after {timeout}s; see {self.log_path}\n"
                                   f"{self.tail()}")

    def tail(self, lines: int = 15) -> str:
        with self._lock:
            self._log.flush()
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def cpu(self) -> float:
        return cpu_seconds(self.pid)

    def activity(self) -> dict[str, int]:
        return activity_counts(self.pid)

    def status_mb(self, key: str) -> float:
        return status_kb(self.pid, key) / 1024

    def stop(self, timeout: float = 20) -> int | None:
        """SIGTERM, then SIGKILL after `timeout`; returns the exit code."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        for t in self._readers:
            t.join(5)
        self._log.close()
        return self.popen.returncode
