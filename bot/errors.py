"""Errors a person can act on: each says what was wrong, where, and what to do."""


class CorpusError(ValueError):
    """A source document is missing, empty or malformed; names the file and the field."""

    def __init__(self, path: object, field: str, problem: str, fix: str = "") -> None:
        self.path = str(path)
        self.field = field
        message = f"{self.path}: field '{field}' {problem}"
        if fix:
            message += f" ({fix})"
        super().__init__(message)


class IndexError_(RuntimeError):
    """The search index cannot be opened or built; the message says how to recover."""
