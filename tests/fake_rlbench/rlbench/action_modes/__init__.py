"""FAKE rlbench.action_modes."""
