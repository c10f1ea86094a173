"""Scoring models: evaluation of a run on a test split, the metrics, their plots, and multi-seed comparisons."""
