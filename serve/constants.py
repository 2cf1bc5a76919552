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

# Router-side defaults.
DEFAULT_MAX_REQUEST_BODY_BYTES = 4 * 1024 * 1024

# Ray Serve's throughput mode: gRPC between replicas instead of object references, the
# ingress replica serving HTTP directly, and no extra threads/loops per replica. It must be
# in the environment of the process that starts Ray (scripts/serve exports it), because Ray's
# workers inherit it from there.
RAY_ENV_DEFAULTS: dict[str, str] = {"RAY_SERVE_THROUGHPUT_OPTIMIZED": "1"}
