"""The one exception type for bad user input."""


class UserInputError(Exception):
    """Bad input the user can fix; its message is one line that names the offending key and value.

    Raised before any training starts and before any MLflow run is created.
    """


def first_line(err: BaseException) -> str:
    """Returns the first line of an exception's message, whitespace collapsed: the cause shown to the user."""
    return " ".join(str(err).strip().split("\n", 1)[0].split())


def root_cause(err: BaseException) -> BaseException:
    """The error at the bottom of a chain of wrappers: `raise ... from` causes, then a database driver's own error.

    MLflow wraps SQLAlchemy's error, which wraps the driver's: the user needs the driver's words (`attempt to write a
    readonly database`), not the wrappers' (`raised as a result of Query-invoked autoflush ...`).
    """
    while err.__cause__ is not None:
        err = err.__cause__
    driver_error = getattr(err, "orig", None)  # sqlalchemy.exc.DBAPIError keeps the driver's exception here
    return driver_error if isinstance(driver_error, BaseException) else err


class JobLost(Exception):
    """A job that never reported back because its process died or its launcher dropped it; the message says why."""
