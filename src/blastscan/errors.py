"""One exception type for every problem a user can fix; the CLI prints it as one line."""


class BlastscanError(Exception):
    """A problem with the user's input or environment, phrased as 'what is wrong; how to fix it'."""
