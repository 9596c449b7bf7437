"""Input normalisation shared by request schemas, services and the CLI."""

from __future__ import annotations

from email_validator import EmailNotValidError, validate_email

from orgauth.lengths import EMAIL_MAX_LENGTH


class InvalidEmailError(ValueError):
    """The text is not a usable email address."""


def normalize_email(email: str) -> str:
    """Validate an address and return its canonical form: trimmed and lower-cased.

    Lower-casing the whole address makes uniqueness and login case-insensitive on every
    database without relying on collations.
    """
    candidate = email.strip()
    if not candidate or len(candidate) > EMAIL_MAX_LENGTH or "\x00" in candidate:
        raise InvalidEmailError("Enter a valid email address.")
    try:
        result = validate_email(candidate, check_deliverability=False)
    except (EmailNotValidError, UnicodeError) as exc:
        raise InvalidEmailError(f"Enter a valid email address ({exc}).") from None
    normalized = result.normalized.lower()
    if len(normalized) > EMAIL_MAX_LENGTH:
        raise InvalidEmailError("Enter a valid email address.")
    return normalized
