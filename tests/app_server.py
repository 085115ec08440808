"""`python -m mGPT.app` as a real server on the loopback address, for the app's tests and benchmark.

    with AppServer([--cfg ..., overrides]) as server:   # waits until the page answers
        server.url, server.peak_rss_mb()
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"


def free_port() -> int:
    """A port nothing listens on now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


class AppServer:
    """The app in a child process: started on a free loopback port, stopped (and its log kept) on exit."""

    def __init__(self, args: list[str], threads: int = 1, start_timeout: float = 300):
        self.port = free_port()
        self.url = f"http://{HOST}:{self.port}/"
        self.args = [*args, "--host", HOST, "--port", str(self.port)]
        self.threads = threads
        self.start_timeout = start_timeout
        self.log = Path(tempfile.mkstemp(prefix="sasoke_app_", suffix=".log")[1])
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> AppServer:
        env = {**os.environ, "OMP_NUM_THREADS": str(self.threads), "PYTHONPATH": str(REPO),
               "PYTHONIOENCODING": "utf-8", "GRADIO_ANALYTICS_ENABLED": "False"}
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen([sys.executable, "-m", "mGPT.app", *self.args], cwd=REPO, env=env,
                                            stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the app exited with {self.process.returncode}:\n{self.output()[-4000:]}")
            try:
                with urllib.request.urlopen(self.url, timeout=5) as response:
                    if response.status == 200:
                        return self
            except OSError:
                time.sleep(0.5)
        self.__exit__(None, None, None)
        raise TimeoutError(f"the app did not answer at {self.url} within {self.start_timeout} s:\n"
                           f"{self.output()[-4000:]}")

    def __exit__(self, *exc) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def peak_rss_mb(self) -> float:
        """The server's peak resident memory so far (Linux VmHWM), in MiB."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError("no VmHWM in /proc: peak memory is only read on Linux")
