"""Evaluation: the official DCASE figures (metrics), result files (dcase_io) and project reports (report)."""
