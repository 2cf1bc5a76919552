"""Metrics (``metrics.FrugalMetrics``), the Grafana dashboard (``dashboard``) and helpers
to read a scrape back (``scrape``)."""
