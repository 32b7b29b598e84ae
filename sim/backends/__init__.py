"""Other simulators behind the same environment interface (sim/env.py: make_env(backend=...))."""
