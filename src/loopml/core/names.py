"""Safe names for models, feature views, jobs and files: no path traversal, ever.

Names become directory and file names in artifact stores, so they are checked once,
here, with one rule.
"""

from __future__ import annotations

import re

from loopml.core.errors import ValidationError

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")


def check_name(name: object, what: str = "name") -> str:
    """Return ``name`` if it is a safe identifier, else raise naming the rule.

    >>> check_name("ctr_model")
    'ctr_model'
    >>> check_name("../etc/passwd", "model name")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    loopml.core.errors.ValidationError: model name '../etc/passwd' is not allowed: use 1-128 ...
    """
    if not isinstance(name, str) or not _NAME.match(name) or ".." in name:
        raise ValidationError(
            f"{what} {name!r} is not allowed: use 1-128 letters, digits, '_', '-' or '.', "
            "starting with a letter or digit, and no '..'",
            field=what,
        )
    return name
