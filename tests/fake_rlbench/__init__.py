"""FAKE RLBench + PyRep + CoppeliaSim for tests: just enough of the real Python API for sim.backends.rlbench.

CoppeliaSim cannot be installed here, so tests put this directory first on sys.path (only inside a
fixture), where `pyrep` and `rlbench` resolve to the FAKE packages below: same module paths, class and
method names as the real ones, no simulator. `fake_coppeliasim` holds the FAKE scene state they share and
records what the backend asked for. Nothing here is evidence that the real RLBench runs.
"""
