"""Sweeps: Optuna search through ask/tell, workers that survive crashes, the CBS strategy."""
