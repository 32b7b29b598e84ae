"""FAKE pyrep package (tests only): the few PyRep names sim.backends.rlbench uses; no CoppeliaSim behind it."""
FAKE = True
