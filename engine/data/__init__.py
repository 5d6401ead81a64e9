"""Data sets: the Clip record, the synthetic data set and the importers."""
