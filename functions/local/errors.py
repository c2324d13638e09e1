"""Why the local stack could not start."""


class LocalStackError(Exception):
    """The local stack could not start or could not wire what the template or app declares."""
