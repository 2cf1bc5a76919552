"""Sample traffic against a running Frugal, to fill its ledger with something worth a cost
report: quiet chat that the cheap pool takes, bursts that spill to the pricier pool, repeated
deterministic questions the response cache answers for free, and embeddings.

Every phase uses the official ``openai`` client; answers are checked, and the phases' counts
(with the pools that served them, from ``x-frugal-pool``) are returned."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from pydantic import BaseModel

QUESTIONS = (
    "What is the capital of France?",
    "Explain what a GPU is in one sentence.",
    "Give me three names for a cat.",
    "What is 12 times 12?",
    "Write a haiku about the sea.",
    "What does HTTP stand for?",
)


class PhaseResult(BaseModel):
    phase: str
    requests: int
    errors: int
    pools: dict[str, int]


def _chat(client, model: str, content: str, max_tokens: int, temperature: float) -> str:
    raw = client.chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": content}], max_tokens=max_tokens, temperature=temperature
    )
    raw.parse()
    return raw.headers.get("x-frugal-pool", "?")


def run_phase(name: str, calls: list[Callable[[], str]], concurrency: int) -> PhaseResult:
    pools: Counter[str] = Counter()
    errors = 0

    def one(call: Callable[[], str]) -> str | None:
        try:
            return call()
        except Exception:  # counted; the phase goes on
            return None

    with ThreadPoolExecutor(concurrency) as pool:
        for served in pool.map(one, calls):
            if served is None:
                errors += 1
            else:
                pools[served] += 1
    return PhaseResult(phase=name, requests=len(calls), errors=errors, pools=dict(pools))


def sample_traffic(
    base_url: str,
    api_keys: list[str],
    chat_model: str,
    embed_model: str | None,
    rounds: int,
    log: Callable[[str], None] = print,
) -> list[PhaseResult]:
    """``rounds`` rounds of the four phases, each round's requests spread over ``api_keys``
    (one tenant per key; ``EMPTY`` for the anonymous tenant when auth is off)."""
    from openai import OpenAI

    clients = [OpenAI(base_url=f"{base_url}/v1", api_key=key, max_retries=0, timeout=300) for key in api_keys]
    results: list[PhaseResult] = []
    for r in range(rounds):
        t0 = time.perf_counter()
        first = len(results)
        quiet = [
            (lambda c=clients[i % len(clients)], i=i: _chat(c, chat_model, f"Tell me a fact about the number {r * 100 + i}.",
                                                            48, 0.7))
            for i in range(8)
        ]
        results.append(run_phase("quiet chat", quiet, concurrency=2))
        burst = [
            (lambda c=clients[i % len(clients)], i=i: _chat(c, chat_model, f"Write a short poem about day {r * 100 + i}.",
                                                            96, 0.7))
            for i in range(24)
        ]
        results.append(run_phase("burst", burst, concurrency=12))
        repeats = [
            (lambda c=clients[i % len(clients)], q=q: _chat(c, chat_model, q, 32, 0.0))
            for i in range(len(clients)) for q in QUESTIONS for _ in range(2)
        ]
        results.append(run_phase("repeated questions", repeats, concurrency=2))
        if embed_model:
            def embed(c=None, i=0) -> str:
                raw = (c or clients[0]).embeddings.with_raw_response.create(
                    model=embed_model, input=[f"document {r}-{i}-{j}" for j in range(8)]
                )
                raw.parse()
                return raw.headers.get("x-frugal-pool", "?")

            results.append(run_phase("embeddings", [
                (lambda c=clients[i % len(clients)], i=i: embed(c, i)) for i in range(6)
            ], concurrency=2))
        log(f"round {r + 1}/{rounds} in {time.perf_counter() - t0:.0f} s: "
            + "; ".join(f"{p.phase} {p.requests - p.errors}/{p.requests} {p.pools}" for p in results[first:]))
    return results
