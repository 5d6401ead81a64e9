"""Anomaly detectors: the contract (base), one folder per detector (the leak classifiers included), the
catalogue that the registry on top fills, and fit/score runs over a project."""
