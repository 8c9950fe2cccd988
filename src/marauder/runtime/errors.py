"""Errors the edge runtime reports on one line (exit code 2), without a traceback."""

from __future__ import annotations


class EdgeError(Exception):
    """A problem the operator can fix: a bad package, a missing backend, an unreadable source."""

    exit_code = 2


class PackageError(EdgeError):
    """The deployment package is incomplete, tampered with or malformed."""


class BackendUnavailable(EdgeError):
    """The requested inference backend (onnxruntime, TensorRT) is not installed or not usable."""


class EngineMismatchError(EdgeError):
    """A TensorRT engine was built for another GPU or TensorRT version."""


class SourceError(EdgeError):
    """A capture source cannot be opened."""


class EnergyConfigError(EdgeError, ValueError):
    """The energy settings are inconsistent (e.g. a power mode with no wattage)."""
