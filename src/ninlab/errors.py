"""The one exception type a user can cause; the CLI prints its message as one sentence."""


class NinlabError(Exception):
    """A problem with the user's input (a path, a file, a name, an option): says what to do."""
