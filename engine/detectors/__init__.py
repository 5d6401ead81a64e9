"""Anomaly detectors: the contract (base), the registry, one folder per detector, and fit/score runs."""
