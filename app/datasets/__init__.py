"""Datasets: upload (streamed, checked, made canonical), list, read, delete."""
