"""The one exception type that the CLI turns into a one-line message."""


class EdgesegError(Exception):
    """A user-facing error: the message says what is wrong and how to fix it."""
