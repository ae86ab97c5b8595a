"""The one exception type for bad user input."""


class InputError(ValueError):
    """Bad user input: a path, a flag, a space or a data set.

    Its message is one line that says what arrived, what was expected and how
    to fix it; the CLI prints it without a traceback and exits with status 2,
    before any trial starts.
    """
