"""FAKE pyrep.errors: the real exception names."""


class ConfigurationPathError(Exception):
    pass


class IKError(Exception):
    pass


class WrongObjectTypeError(Exception):
    pass
