"""One error hierarchy for loopml, mapped once per transport (HTTP status, CLI exit code).

::

    LoopmlError                      any loopml failure (status 500)
    ├── ConfigError (ValueError)     loopml.toml or a URL is wrong; names the key and the fix
    ├── ValidationError (ValueError) bad input: names the field, the value and what is allowed (400)
    │   └── SignatureError           columns do not match a model's input signature (400)
    ├── NotFoundError (LookupError)  a named thing does not exist; lists what does (404)
    ├── ConflictError                the action contradicts current state (409)
    ├── IntegrityError               a stored artifact's hash does not match its record (500)
    ├── NotFittedError (AttributeError)  a model was used before ``fit`` / ``load``
    ├── ClosedError (RuntimeError)   a closed resource was used again
    ├── UnauthorizedError            an admin action without a valid token (401)
    ├── PayloadTooLargeError         a request body over the configured limit (413)
    └── UnavailableError             overloaded, not ready, or a required service is absent (503)

Every error carries a ``status_code`` and keyword fields, so transports never parse messages.
"""

from __future__ import annotations

from typing import Any


class LoopmlError(Exception):
    """Base of every loopml error.

    >>> err = LoopmlError("boom", model="ctr")
    >>> err.status_code, err.fields["model"]
    (500, 'ctr')
    """

    status_code = 500

    def __init__(self, message: str, **fields: Any) -> None:
        super().__init__(message)
        self.message = message
        self.fields = fields

    def to_dict(self) -> dict[str, Any]:
        """The JSON body transports send: ``{"error": message, ...fields}``."""
        body: dict[str, Any] = {"error": self.message}
        for key, value in self.fields.items():
            if isinstance(value, str | int | float | bool | type(None) | list):
                body[key] = value
        return body


class ConfigError(LoopmlError, ValueError):
    """A configuration key or URL is invalid.

    >>> raise ConfigError("storage.metadata: unsupported scheme 'mysql'", key="storage.metadata")
    Traceback (most recent call last):
    ...
    loopml.core.errors.ConfigError: storage.metadata: unsupported scheme 'mysql'
    """


class ValidationError(LoopmlError, ValueError):
    """Input failed validation; the message names the field, the value and the fix."""

    status_code = 400


class SignatureError(ValidationError):
    """Columns do not match a model's input signature; lists missing and extra columns."""


class NotFoundError(LoopmlError, LookupError):
    """A named object (model, version, alias, feature view, job, ...) does not exist."""

    status_code = 404


class ConflictError(LoopmlError):
    """The requested change conflicts with the current state (e.g. a version already exists)."""

    status_code = 409


class IntegrityError(LoopmlError):
    """A stored artifact does not match its recorded sha256: it was changed after registration."""

    status_code = 500


class NotFittedError(LoopmlError, AttributeError):
    """An estimator or predictor was used before ``fit`` or ``load``."""

    status_code = 503


class ClosedError(LoopmlError, RuntimeError):
    """A resource was used after ``close()``."""


class UnauthorizedError(LoopmlError):
    """An admin action was attempted without a valid bearer token."""

    status_code = 401


class PayloadTooLargeError(LoopmlError):
    """A request body exceeded the configured size limit."""

    status_code = 413


class UnavailableError(LoopmlError):
    """Not ready, overloaded, or a required external service is unreachable."""

    status_code = 503


def did_you_mean(value: str, choices: list[str] | tuple[str, ...]) -> str:
    """A short hint listing valid choices, closest first.

    >>> did_you_mean("prodution", ["production", "staging"])
    "did you mean 'production'? valid: 'production', 'staging'"
    """
    import difflib

    close = difflib.get_close_matches(value, list(choices), n=1)
    listed = ", ".join(repr(c) for c in sorted(choices)) or "(none)"
    if close:
        return f"did you mean {close[0]!r}? valid: {listed}"
    return f"valid: {listed}"
