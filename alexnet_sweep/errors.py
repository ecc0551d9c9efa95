"""The one exception type for bad user input."""


class UserInputError(Exception):
    """Bad input the user can fix; its message is one line that names the offending key and value.

    Raised before any training starts and before any MLflow run is created.
    """
