"""The one exception type the command line turns into a one-line error."""


class FedjourneyError(Exception):
    """A user-facing error: the message names the problem and the fix, on one line."""
