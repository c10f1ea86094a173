"""The one exception type that the command line turns into an `error:` line."""


class UserError(Exception):
    """A mistake the user can fix; the message says how. Shown without a traceback."""
