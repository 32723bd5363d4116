"""Plots of a job (and the numbers behind them)."""
