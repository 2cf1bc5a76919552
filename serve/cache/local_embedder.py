"""An ``Embedder`` that runs a sentence-transformers model in process with transformers.

It computes what the service computes when vLLM serves the model as a pooling model (for
all-MiniLM-L6-v2: mean pooling over the attention mask, then L2 normalisation, per its
``modules.json``), so offline evaluations measure the similarities the cache will see. For
offline use (``scripts/eval_semantic_cache.py``); the router uses the served model.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

SENTENCE_TRANSFORMERS_MAX_TOKENS = 256  # all-MiniLM-L6-v2's max_seq_length


class TransformersEmbedder:
    """Loads ``model_dir`` on first use; ``embed`` runs the model in a worker thread."""

    def __init__(self, model_dir: str | Path, num_threads: int = 1, batch_size: int = 64) -> None:
        self.model_dir = Path(model_dir).expanduser()
        self.num_threads = num_threads
        self.batch_size = batch_size
        self._model: Any = None
        self._tokenizer: Any = None

    def _load(self) -> None:
        import torch
        from transformers import AutoModel, AutoTokenizer

        torch.set_num_threads(self.num_threads)
        self._tokenizer = AutoTokenizer.from_pretrained(self.model_dir)
        self._model = AutoModel.from_pretrained(self.model_dir).eval()

    def embed_sync(self, texts: list[str]) -> list[list[float]]:
        import torch

        if self._model is None:
            self._load()
        vectors: list[list[float]] = []
        for start in range(0, len(texts), self.batch_size):
            batch = self._tokenizer(
                texts[start : start + self.batch_size],
                padding=True,
                truncation=True,
                max_length=SENTENCE_TRANSFORMERS_MAX_TOKENS,
                return_tensors="pt",
            )
            with torch.inference_mode():
                hidden = self._model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
            vectors += torch.nn.functional.normalize(pooled, p=2, dim=1).tolist()
        return vectors

    async def embed(self, texts: list[str]) -> list[list[float]]:
        return await asyncio.to_thread(self.embed_sync, texts)
