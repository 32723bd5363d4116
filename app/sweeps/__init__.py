"""Sweeps: a grid of (K, seed) jobs and the label-free choice of K."""
