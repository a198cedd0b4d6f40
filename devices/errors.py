"""The device error tree and its one mapping to wire completion codes.

Every error a driver raises derives from :class:`DeviceError`; where a builtin
fits, the error inherits it too (``Timeout`` is a ``TimeoutError``), so callers
may catch either.  :func:`completion_code` is the only place where an error
becomes a completion code.
"""

from __future__ import annotations

from enum import StrEnum


class CompletionCode(StrEnum):
    """The completion codes of wire API v1."""

    SUCCESS = "success"
    CANCELED = "canceled"
    TIME_OUT = "timeOut"
    DEVICE_NOT_READY = "deviceNotReady"
    HARDWARE_ERROR = "hardwareError"
    INVALID_DATA = "invalidData"
    UNSUPPORTED_COMMAND = "unsupportedCommand"
    SEQUENCE_ERROR = "sequenceError"
    USER_ERROR = "userError"
    FRAUD_ATTEMPT = "fraudAttempt"
    INTERNAL_ERROR = "internalError"


class DeviceError(Exception):
    """Root of every error a device raises; its message is safe to show a UI."""


class NotReady(DeviceError):
    """The device cannot take the command now (offline, starting, busy elsewhere)."""


class Offline(NotReady, ConnectionError):
    """The hardware is unreachable: unplugged, powered off or not answering at all."""


class HardwareError(DeviceError):
    """A fault that needs a technician: jam, mechanism, lock or a device that misbehaves."""


class ProtocolError(HardwareError):
    """The device answered with bytes that break its protocol (garbage, bad checksum)."""


class MediaError(DeviceError):
    """A condition a person fixes without tools: paper out, cover open, card removed."""


class AccessDenied(MediaError):
    """The chip refused the access key the citizen gave (wrong MRZ data or CAN)."""


class Forbidden(DeviceError, PermissionError):
    """The requester lacks the role the command needs (a UI asking for a staff operation)."""


class Timeout(DeviceError, TimeoutError):
    """The command's deadline passed before the device finished."""


class InvalidData(DeviceError, ValueError):
    """The request's parameters are wrong for this device (unknown template, bad APDU)."""


class Unsupported(DeviceError, NotImplementedError):
    """The device or its configuration does not offer this command or option."""


class SequenceError(DeviceError):
    """The command is valid but not now (a deposit already active, nothing to end)."""


class FraudAttempt(DeviceError):
    """The device detected manipulation (coin on a string, forced door)."""


_CODES: dict[type[BaseException], CompletionCode] = {
    AccessDenied: CompletionCode.USER_ERROR,
    MediaError: CompletionCode.USER_ERROR,
    Forbidden: CompletionCode.USER_ERROR,
    NotReady: CompletionCode.DEVICE_NOT_READY,
    HardwareError: CompletionCode.HARDWARE_ERROR,
    Timeout: CompletionCode.TIME_OUT,
    InvalidData: CompletionCode.INVALID_DATA,
    Unsupported: CompletionCode.UNSUPPORTED_COMMAND,
    SequenceError: CompletionCode.SEQUENCE_ERROR,
    FraudAttempt: CompletionCode.FRAUD_ATTEMPT,
    # A deadline (``asyncio.timeout``) raises the bare builtin: a timeout, not a bug.
    TimeoutError: CompletionCode.TIME_OUT,
}


def completion_code(exc: BaseException) -> CompletionCode:
    """Return the completion code for ``exc``, walking its class hierarchy.

    A bare :class:`TimeoutError` (a deadline) is ``timeOut``; anything else that
    is not a :class:`DeviceError` (a bug) is ``internalError``.
    """
    for cls in type(exc).__mro__:
        code = _CODES.get(cls)
        if code is not None:
            return code
    return CompletionCode.INTERNAL_ERROR
