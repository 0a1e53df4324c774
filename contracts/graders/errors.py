"""The one error of a grader that cannot run as given."""

from __future__ import annotations


class GraderError(ValueError):
    """A grader that cannot run as given; `param` is the field at fault, as OpenAI names it
    (`grader.graders.name.reference`)."""

    def __init__(self, message: str, param: str) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
