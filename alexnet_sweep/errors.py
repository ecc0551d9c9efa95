"""The one exception type for bad user input."""


class UserInputError(Exception):
    """Bad input the user can fix; its message is one line that names the offending key and value.

    Raised before any training starts and before any MLflow run is created.
    """


def first_line(err: BaseException) -> str:
    """Returns the first line of an exception's message, whitespace collapsed: the cause shown to the user."""
    return " ".join(str(err).strip().split("\n", 1)[0].split())


class JobLost(Exception):
    """A job that never reported back because its process died or its launcher dropped it; the message says why."""
