"""The one exception type a user can cause; the CLI prints its message as one sentence."""


class NinlabError(Exception):
    """A problem with the user's input (a path, a file, a name, an option): says what to do.

    `exit_code` is the status the command line exits with (2; training sets others)."""

    exit_code = 2
