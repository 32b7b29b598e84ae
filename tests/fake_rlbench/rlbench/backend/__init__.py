"""FAKE rlbench.backend."""
