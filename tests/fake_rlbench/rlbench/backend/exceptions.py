"""FAKE rlbench.backend.exceptions: the real exception names."""


class InvalidActionError(Exception):
    pass


class TaskEnvironmentError(Exception):
    pass
