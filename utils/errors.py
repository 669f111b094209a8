"""Errors that reach the user as one readable line on stderr and a non-zero exit."""


class UserError(Exception):
    """Bad input or a missing resource: the message says what is wrong and what to do."""


class DataError(UserError):
    """The data set is missing, unreadable or malformed."""


class CheckpointError(UserError):
    """The checkpoint is missing, corrupt, foreign or does not match its model."""


class InvalidNameError(UserError):
    """A name that cannot be classified (empty, or no letters left after normalisation)."""
