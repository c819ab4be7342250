"""Errors of the biometric core.

Every error is a :class:`ValueError` (the input was bad), so that a caller that does not care
about the detail can catch one type; the subclasses carry the measured value that made the
input unacceptable, for logs and for the agent console's advice.
"""

from __future__ import annotations


class BiometricError(ValueError):
    """Base class: the input cannot be turned into a usable fingerprint record."""

    def __reduce__(self) -> tuple[object, ...]:
        # Keyword-only data must survive pickling (process pools, logging handlers).
        return (_rebuild, (type(self), self.args, self.__dict__))


def _rebuild(
    cls: type[BiometricError], args: tuple[object, ...], state: dict[str, object]
) -> BiometricError:
    err = cls.__new__(cls)
    err.args = args
    err.__dict__.update(state)
    return err


class InvalidImage(BiometricError):  # noqa: N818 (name agreed with the other areas)
    """The array is not an 8-bit grey image of a plausible size and resolution."""

    def __init__(self, message: str, *, shape: tuple[int, ...] = (), dtype: str = "") -> None:
        super().__init__(message)
        self.shape = shape
        self.dtype = dtype


class InvalidResolution(InvalidImage):
    """The resolution (dpi) is missing, not finite or outside what a fingerprint sensor gives."""

    def __init__(self, message: str, *, dpi: float) -> None:
        super().__init__(message)
        self.dpi = dpi


class NoFingerprint(BiometricError):  # noqa: N818 (name agreed with the other areas)
    """The image holds no usable ridge pattern (blank, saturated, or too small a print)."""

    def __init__(self, message: str, *, reason: str, value: float) -> None:
        super().__init__(message)
        self.reason = reason
        self.value = value


class InvalidTemplate(BiometricError):  # noqa: N818 (name agreed with the other areas)
    """A template cannot be compared (no minutiae, absurd resolution or size)."""
