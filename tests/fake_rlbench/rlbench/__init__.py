"""FAKE rlbench package (tests only): the RLBench API surface sim.backends.rlbench uses, over a FAKE scene."""
FAKE = True
