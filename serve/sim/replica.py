"""One simulated engine replica: a continuous-batching server, advanced event by event.

The model (the same one the integer program in ``serve.sim.optimal`` assumes):

- **Admission.** Requests wait in the replica's FIFO queue until a decode slot is free
  (at most ``profile.max_concurrency`` admitted) and the KV cache can hold the whole request
  (``prompt + output`` tokens reserved at admission, so nothing is ever preempted). An empty
  replica admits any request, however long.
- **Prefill.** Admitted requests are prefilled one at a time, each for
  ``prompt_tokens / profile.prefill_tokens_per_s`` seconds; decoding pauses meanwhile (the
  GPU is busy with the prompt; chunked prefill interleaves the same work differently).
- **Decode.** ``n`` decoding streams share ``profile.tokens_per_s(n)`` output tokens/s
  equally. Each stream's progress is tracked in *virtual time* (tokens per stream since the
  replica started), so a change of ``n`` costs O(1) and a completion O(log n).
- **Latencies.** TTFT = arrival to end of prefill (queueing included) + the profile's
  short-prompt TTFT at the current decode concurrency (the wait for the running decode step
  and the first sample; it is latency, not GPU work). TPOT = decode time / (output - 1).

A replica writes each request's times into the shared ``RequestBook``; the fleet owns the
event heap and asks ``next_event_s`` after every change.
"""

from __future__ import annotations

import heapq
from collections import deque
from dataclasses import dataclass

from serve.cost.profile import ThroughputProfile

# Virtual-time slack when deciding that a stream has produced all its tokens.
_TOKENS_EPS = 1e-6


@dataclass(frozen=True)
class ReplicaModel:
    """A replica's performance, tabulated from its profile for O(1) lookups.

    ``stream_tokens_per_s[n]`` is what each of ``n`` decoding streams gets;
    ``base_ttft_s[n]`` the short-prompt TTFT at ``n`` decoding streams.
    """

    max_concurrency: int
    kv_capacity_tokens: float
    prefill_tokens_per_s: float | None
    stream_tokens_per_s: tuple[float, ...]
    base_ttft_s: tuple[float, ...]

    @classmethod
    def from_profile(cls, profile: ThroughputProfile, kv_capacity_tokens: float) -> ReplicaModel:
        max_c = profile.max_concurrency
        stream = [0.0] + [profile.tokens_per_s(n) / n for n in range(1, max_c + 1)]
        ttft = [profile.ttft_ms(max(n, 1)) / 1000.0 for n in range(0, max_c + 1)]
        return cls(
            max_concurrency=max_c,
            kv_capacity_tokens=float(kv_capacity_tokens),
            prefill_tokens_per_s=profile.prefill_tokens_per_s,
            stream_tokens_per_s=tuple(stream),
            base_ttft_s=tuple(ttft),
        )

    def prefill_s(self, prompt_tokens: int) -> float:
        return prompt_tokens / self.prefill_tokens_per_s if self.prefill_tokens_per_s else 0.0


class RequestBook:
    """Per-request inputs and outcomes, as plain lists (fast to index from Python).

    Times are seconds since the trace started; NaN until they happen.
    """

    __slots__ = ("prompt", "output", "t_first", "t_decode", "t_done", "pool", "completed")

    def __init__(self, prompt: list[int], output: list[int]) -> None:
        n = len(prompt)
        nan = float("nan")
        self.prompt = prompt
        self.output = output
        self.t_first = [nan] * n  # first token reaches the client
        self.t_decode = [nan] * n  # prefill finished, decoding starts
        self.t_done = [nan] * n
        self.pool = [-1] * n  # index of the pool that served it
        self.completed: list[int] = []  # finished since the owner last cleared it


class Replica:
    """A batching engine. Call ``enqueue`` when a request is routed to it and ``on_event`` at
    ``next_event_s()``; both return how many requests completed, and update ``admitted``,
    ``queued`` (``len(queue)``) for the fleet's counters."""

    __slots__ = (
        "model", "book", "pool", "index", "queue", "prefill_q", "prefilling", "prefill_end_s",
        "heap", "v", "t_last", "admitted", "kv_used", "version", "scheduled_s", "draining",
        "start_s", "ready_s", "stop_s",
    )  # fmt: skip

    def __init__(self, model: ReplicaModel, book: RequestBook, pool: int, index: int, start_s: float) -> None:
        self.model = model
        self.book = book
        self.pool = pool
        self.index = index
        self.queue: deque[int] = deque()
        self.prefill_q: deque[int] = deque()
        self.prefilling = -1
        self.prefill_end_s = 0.0
        self.heap: list[tuple[float, int]] = []
        self.v = 0.0
        self.t_last = start_s
        self.admitted = 0
        self.kv_used = 0.0
        self.version = 0
        self.scheduled_s: float | None = None
        self.draining = False
        self.start_s = start_s  # billing starts when the replica is requested
        self.ready_s: float | None = None
        self.stop_s: float | None = None

    @property
    def in_flight(self) -> int:
        return self.admitted + len(self.queue)

    def next_event_s(self) -> float | None:
        if self.prefilling >= 0:
            return self.prefill_end_s
        if self.heap:
            return self.t_last + (self.heap[0][0] - self.v) / self.model.stream_tokens_per_s[len(self.heap)]
        return None

    def enqueue(self, rid: int, t: float) -> int:
        self._advance(t)
        self.queue.append(rid)
        return self._admit_and_prefill(t)

    def on_event(self, t: float) -> int:
        self._advance(t)
        done = 0
        if self.prefilling >= 0 and t >= self.prefill_end_s:
            rid = self.prefilling
            self.prefilling = -1
            done += self._join_decode(rid, t)
        heap = self.heap
        limit = self.v + _TOKENS_EPS
        while heap and heap[0][0] <= limit:
            _, rid = heapq.heappop(heap)
            self._complete(rid, t)
            done += 1
        return done + self._admit_and_prefill(t)

    def _advance(self, t: float) -> None:
        if self.prefilling < 0 and self.heap:
            self.v += (t - self.t_last) * self.model.stream_tokens_per_s[len(self.heap)]
        self.t_last = t

    def _admit_and_prefill(self, t: float) -> int:
        model, book, queue = self.model, self.book, self.queue
        done = 0
        while queue and self.admitted < model.max_concurrency:
            rid = queue[0]
            need = book.prompt[rid] + book.output[rid]
            if self.admitted and self.kv_used + need > model.kv_capacity_tokens:
                break
            queue.popleft()
            self.admitted += 1
            self.kv_used += need
            if model.prefill_tokens_per_s:
                self.prefill_q.append(rid)
            else:
                done += self._join_decode(rid, t)
        if self.prefilling < 0 and self.prefill_q:
            rid = self.prefill_q.popleft()
            self.prefilling = rid
            self.prefill_end_s = t + model.prefill_s(self.book.prompt[rid])
        return done

    def _join_decode(self, rid: int, t: float) -> int:
        book = self.book
        book.t_decode[rid] = t
        book.t_first[rid] = t + self.model.base_ttft_s[len(self.heap)]
        remaining = book.output[rid] - 1
        if remaining <= 0:
            self._complete(rid, t)
            return 1
        heapq.heappush(self.heap, (self.v + remaining, rid))
        return 0

    def _complete(self, rid: int, t: float) -> None:
        book = self.book
        book.t_done[rid] = max(t, book.t_first[rid])
        book.completed.append(rid)
        self.admitted -= 1
        self.kv_used -= book.prompt[rid] + book.output[rid]
