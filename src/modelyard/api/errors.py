"""Errors in AWS's shape: a code, a message that says what to fix, an HTTP status.

Protocol codecs render an ``AwsError`` in their service's wire format; domain code only
raises them.
"""

from __future__ import annotations


class AwsError(Exception):
    """An error the client sees. ``fields`` adds members some protocols carry (S3's Key)."""

    def __init__(self, code: str, message: str, status: int = 400, **fields: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        self.fields = fields

    @property
    def sender_fault(self) -> bool:
        return self.status < 500

    def __repr__(self) -> str:
        return f"AwsError({self.code!r}, {self.message!r}, {self.status})"


def validation_error(message: str) -> AwsError:
    return AwsError("ValidationException", message)


def resource_not_found(message: str) -> AwsError:
    return AwsError("ResourceNotFound", message)


def resource_in_use(message: str) -> AwsError:
    return AwsError("ResourceInUse", message)


def resource_limit_exceeded(message: str) -> AwsError:
    return AwsError("ResourceLimitExceeded", message)


def not_implemented(service: str, operation: str) -> AwsError:
    return AwsError(
        "NotImplemented",
        f"modelyard does not implement {service} operation {operation} yet. "
        "See `modelyard operations` for what this server runs.",
        status=501,
    )
