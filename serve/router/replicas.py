"""Replica counts from Ray Serve's controller, for the pool monitor."""

from __future__ import annotations

import asyncio

READY_STATES = ("RUNNING",)
STARTING_STATES = ("STARTING", "UPDATING", "RECOVERING")


class ServeReplicaCounter:
    """Reads ``serve.status()`` for this application; ``deployments`` maps pool -> deployment."""

    def __init__(self, deployments: dict[str, str]) -> None:
        self.deployments = deployments

    async def counts(self) -> dict[str, tuple[int, int]]:
        from ray import serve

        app = serve.get_replica_context().app_name
        status = await asyncio.to_thread(serve.status)
        deployments = status.applications[app].deployments
        out = {}
        for pool, name in self.deployments.items():
            if name not in deployments:
                continue
            states = {str(getattr(k, "value", k)): v for k, v in deployments[name].replica_states.items()}
            ready = sum(states.get(s, 0) for s in READY_STATES)
            starting = sum(states.get(s, 0) for s in STARTING_STATES)
            out[pool] = (ready, starting)
        return out
