"""The fleet simulator: replays a request trace against simulated pools, dispatching every
request with the router's own policy objects and scaling pools the way Ray Serve does.

Modules: ``trace`` (workloads and arrivals), ``pools`` (simulated pools from the catalogue),
``replica`` (one batching engine), ``autoscaler`` (Ray Serve's queue-length policy),
``fleet`` (the event loop), ``optimal`` (the cheapest GPU mix, an integer program),
``study`` (policies x workloads) and ``report`` (tables, JSON, plots).
"""
