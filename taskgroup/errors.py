"""User-facing errors.

A `TaskgroupError` is a problem with the user's input or environment (a malformed file, an
unknown task, an infeasible budget). The CLI prints its message and exits with code 2;
anything else is a bug and keeps its traceback.
"""


class TaskgroupError(Exception):
    """Bad input or environment; the message says what and where, and how to fix it."""


class SchemaError(TaskgroupError):
    """A file the toolkit reads does not match its schema. The message names file and field."""

    def __init__(self, path: object, field: str, problem: str):
        self.path = str(path)
        self.field = field
        super().__init__(f"{self.path}: field '{field}': {problem}")
