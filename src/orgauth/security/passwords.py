"""Password policy and bcrypt hashing.

* One policy function, :func:`check_password_policy`, used by every path that sets a
  password (register, change, reset, admin create, CLI).
* Hashing is bcrypt over an HMAC-SHA256 pre-hash of the NFKC-normalised password, so
  passwords longer than bcrypt's 72-byte input limit are never silently truncated.
* Hashing runs in a bounded thread pool, never on the event loop.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import os
import re
import threading
import unicodedata
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import bcrypt

from orgauth.lengths import PASSWORD_MAX_LENGTH

# Inputs are cut off long before NFKC can blow them up (one character may become 18).
MAX_PASSWORD_INPUT_LENGTH = 1024
# Not common: zxcvbn must estimate at least the guesses of its score 3 ("safely unguessable"
# behind a slow hash). The estimate is compared, not the score: zxcvbn estimates a string in
# which it finds no pattern at 10**length + 1 guesses, and score 3 starts 5 guesses above
# 10**8, so no 8-character string, however random, could reach it. The two rules differ only
# for estimates of 10**8 to 10**8 + 4 guesses, which is where every patternless 8-character
# string lands: such a password (PASSWORD_MIN_LENGTH is at least 8) now passes.
MIN_GUESSES = 10**8
MIN_ZXCVBN_SCORE = 3
HASH_PREFIX = "bcrypt-sha256$"
# A fixed, public key: the pre-hash only widens bcrypt's input, it is not a pepper, so
# rotating SECRET_KEY never invalidates stored passwords.
_PREHASH_KEY = b"orgauth.bcrypt-sha256.v1"
_BCRYPT_COST = re.compile(r"^\$2[aby]\$(\d\d)\$")
_IDENTITY_SPLIT = re.compile(r"[@.+_\-\s]+")
_MIN_IDENTITY_PART = 3
# zxcvbn keeps the user inputs in a module-level dictionary while scoring.
_ZXCVBN_LOCK = threading.Lock()


class WeakPasswordError(ValueError):
    """The password does not meet the policy; the message says why, for the user."""


@dataclass(frozen=True)
class PasswordIdentity:
    """What a password must not be built from."""

    email: str | None = None
    first_name: str | None = None
    last_name: str | None = None

    def parts(self) -> list[str]:
        values: list[str] = []
        for value in (self.email, self.first_name, self.last_name):
            if not value:
                continue
            lowered = value.lower()
            values.append(lowered)
            values.extend(p for p in _IDENTITY_SPLIT.split(lowered) if p)
        unique = {v for v in values if len(v) >= _MIN_IDENTITY_PART}
        return sorted(unique, key=len, reverse=True)


def normalize_password(password: str) -> str:
    """NFKC-normalise; refuse NUL bytes, unencodable text (lone surrogates), huge input."""
    if len(password) > MAX_PASSWORD_INPUT_LENGTH:
        raise WeakPasswordError(f"Password must be at most {PASSWORD_MAX_LENGTH} characters long.")
    if "\x00" in password:
        raise WeakPasswordError("Password must not contain NUL characters.")
    try:
        password.encode("utf-8")
    except UnicodeEncodeError:
        raise WeakPasswordError("Password contains invalid Unicode characters.") from None
    return unicodedata.normalize("NFKC", password)


def check_password_policy(
    password: str, *, min_length: int, identity: PasswordIdentity | None = None
) -> str:
    """Validate ``password`` (docs/SECURITY.md, Passwords); return the normalised password.

    Length ``min_length``..128 characters, no composition rules, not common (zxcvbn
    estimates at least ``MIN_GUESSES`` guesses) and not built from the user's email or names.
    """
    normalized = normalize_password(password)
    if len(normalized) < min_length:
        raise WeakPasswordError(f"Password must be at least {min_length} characters long.")
    if len(normalized) > PASSWORD_MAX_LENGTH:
        raise WeakPasswordError(f"Password must be at most {PASSWORD_MAX_LENGTH} characters long.")

    parts = identity.parts() if identity else []
    if _zxcvbn(normalized, parts)["guesses"] < MIN_GUESSES:
        raise WeakPasswordError(
            "Password is too common or too easy to guess; try a longer passphrase."
        )
    remainder = normalized.lower()
    for part in parts:
        remainder = remainder.replace(part, "")
    if remainder != normalized.lower() and (
        not remainder.strip() or _zxcvbn(remainder, [])["score"] < MIN_ZXCVBN_SCORE
    ):
        raise WeakPasswordError("Password must not be based on your email address or name.")
    return normalized


def _zxcvbn(password: str, user_inputs: list[str]) -> dict[str, Any]:
    """zxcvbn's estimate: ``guesses``, ``score`` 0-4 (serialised: zxcvbn is not thread-safe)."""
    from zxcvbn import zxcvbn  # imported lazily: it loads sizeable word lists

    with _ZXCVBN_LOCK:
        result: dict[str, Any] = zxcvbn(
            password, user_inputs=user_inputs, max_length=PASSWORD_MAX_LENGTH
        )
    return result


def _prehash(password: str) -> bytes:
    digest = hmac.new(_PREHASH_KEY, password.encode("utf-8"), hashlib.sha256).digest()
    return base64.b64encode(digest)  # 44 ASCII bytes, no NUL: safe bcrypt input


def hash_password_sync(password: str, rounds: int) -> str:
    """bcrypt(HMAC-SHA256(NFKC(password))) at ``rounds``; blocking, call off the event loop."""
    hashed = bcrypt.hashpw(_prehash(normalize_password(password)), bcrypt.gensalt(rounds))
    return HASH_PREFIX + hashed.decode("ascii")


def verify_password_sync(password: str, stored_hash: str) -> bool:
    """Constant-time check of ``password`` against a stored hash; blocking."""
    if not stored_hash.startswith(HASH_PREFIX):
        return False
    try:
        candidate = _prehash(normalize_password(password))
        return bcrypt.checkpw(candidate, stored_hash[len(HASH_PREFIX) :].encode("ascii"))
    except (ValueError, WeakPasswordError):
        return False


def hash_cost(stored_hash: str) -> int | None:
    """The bcrypt cost factor of a stored hash."""
    match = _BCRYPT_COST.match(stored_hash.removeprefix(HASH_PREFIX))
    return int(match.group(1)) if match else None


def needs_rehash(stored_hash: str, rounds: int) -> bool:
    """True when the hash was made with another scheme or a lower cost than ``rounds``."""
    cost = hash_cost(stored_hash)
    return not stored_hash.startswith(HASH_PREFIX) or cost is None or cost < rounds


HASHING_THREAD_NICENESS = 10


def usable_cpus() -> int:
    """CPUs this process may run on (respects taskset/cgroup affinity)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def _lower_thread_priority() -> None:
    """Run hashing threads at a lower priority than the event loop.

    bcrypt releases the GIL and burns a whole core per hash; at equal priority a login
    storm takes CPU time away from the thread that answers every other request. Niced
    threads still use all idle CPU, so login throughput is unchanged.
    """
    # Not Linux, or not permitted: keep the default priority.
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), HASHING_THREAD_NICENESS)


class PasswordHasher:
    """Hashes and verifies passwords in a bounded thread pool.

    bcrypt releases the GIL, so at most one hashing thread per core keeps every core busy
    while leaving the event loop free to answer other requests.
    """

    def __init__(self, rounds: int, *, max_workers: int | None = None) -> None:
        self.rounds = rounds
        self._max_workers = max_workers or usable_cpus()
        self._executor: ThreadPoolExecutor | None = None
        self._dummy_hash: str | None = None

    def _pool(self) -> ThreadPoolExecutor:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(
                max_workers=self._max_workers,
                thread_name_prefix="orgauth-bcrypt",
                initializer=_lower_thread_priority,
            )
        return self._executor

    async def hash(self, password: str) -> str:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool(), hash_password_sync, password, self.rounds)

    async def verify(self, password: str, stored_hash: str) -> bool:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool(), verify_password_sync, password, stored_hash)

    async def verify_dummy(self, password: str) -> None:
        """Spend the time of one verification, for unknown or inactive accounts."""
        if self._dummy_hash is None:
            self._dummy_hash = await self.hash(os.urandom(16).hex())
        await self.verify(password, self._dummy_hash)

    def needs_rehash(self, stored_hash: str) -> bool:
        return needs_rehash(stored_hash, self.rounds)

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None
