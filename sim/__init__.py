"""Simulated manipulation scenes (MuJoCo) that stand in for the real arm."""
