"""Checking a cloud deployment without a cloud: the Ray cluster config (``cluster.yaml``) against
Ray's own autoscaler schema, each pool of a Frugal config against the node types that must host
it (accelerator, GPUs, CPUs, memory for its weights and KV cache, capacity at maximum scale),
the ``serve deploy`` config against Ray Serve's schema, and what the cluster costs per hour."""
