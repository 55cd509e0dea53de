"""Bandit policies and their closed loop against the simulated world, over the queue."""
