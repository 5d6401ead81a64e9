"""Data sets: the Clip record, the Detection record (what a detector says about a clip), the synthetic data
set and the importers."""
