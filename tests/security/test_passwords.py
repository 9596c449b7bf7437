"""Password policy and hashing (docs/SECURITY.md): what is refused, what verifies, where it runs."""

from __future__ import annotations

import asyncio
import random
import string
import threading
import time
import unicodedata
from collections.abc import AsyncIterator, Awaitable, Callable

import annotated_types
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orgauth.lengths import PASSWORD_MAX_LENGTH
from orgauth.security import passwords
from orgauth.security.passwords import (
    HASH_PREFIX,
    MIN_GUESSES,
    PasswordHasher,
    PasswordIdentity,
    WeakPasswordError,
    check_password_policy,
    hash_cost,
    hash_password_sync,
    needs_rehash,
    normalize_password,
    verify_password_sync,
)
from orgauth.settings import OrgAuthSettings

FAST = 4  # bcrypt's minimum cost keeps these tests quick
STRONG = "correct horse battery staple"
ALICE = PasswordIdentity(email="alice.smith@example.com", first_name="Alice", last_name="Smith")


@pytest.fixture
async def hasher() -> AsyncIterator[PasswordHasher]:
    instance = PasswordHasher(FAST)
    yield instance
    instance.close()


# --- policy --------------------------------------------------------------------------


@pytest.mark.parametrize("password", [STRONG, "Tr0ub4dor&3x-lamp", "plum quartz ladder 7 fjord"])
def test_strong_passwords_are_accepted(password: str) -> None:
    assert check_password_policy(password, min_length=12) == password
    assert check_password_policy(password, min_length=12, identity=ALICE) == password


def test_minimum_length_comes_from_the_argument() -> None:
    with pytest.raises(WeakPasswordError, match="at least 40"):
        check_password_policy(STRONG, min_length=40)
    with pytest.raises(WeakPasswordError, match="at least 12"):
        check_password_policy("xK#9qz!mW2", min_length=12)
    assert check_password_policy("xK#9qz!mW2", min_length=8) == "xK#9qz!mW2"


def test_length_counts_characters_not_bytes() -> None:
    # Twelve four-byte characters are twelve characters.
    emoji = "🦄🌈🔐🍕🚀🎻🐙🌵🧭🪐🎲🦉"
    assert check_password_policy(emoji, min_length=12) == emoji


def test_passwords_over_128_characters_are_refused() -> None:
    too_long = ("quartz ladder fjord plum " * 6)[: PASSWORD_MAX_LENGTH + 1]
    with pytest.raises(WeakPasswordError, match="at most 128"):
        check_password_policy(too_long, min_length=12)


# Common passwords, patterns and keyboard walks, some right at the shortest allowed length.
COMMON_PASSWORDS = [
    "password1",
    "Password123!",
    "Summer2024!",
    "Summer24",
    "Sept2024",
    "P@ssw0rd",
    "Welcome1",
    "iloveyou",
    "Admin@12",
    "Abcd@123",
    "12345678",
    "aaaaaaaa",
    "1qaz2wsx",
    "!QAZ2wsx",
    "1qaz@WSX",
    "zaq1@WSX",
    "Zaq1@wsx",
    "xsw2#EDC",
    "qwer!@#$",
    "1q2w3e4r",
    "qwertyuiop",
    "password1234",
    "Password2024!",
    "Welcome2024!",
    "Letmein2024!",
    "Iloveyou2024",
    "Qwertyuiop1!",
    "qwertyuiop123",
    "1qaz2wsx3edc",
    "123456789012",
    "aaaaaaaaaaaa",
]
# Alice Smith's email or names with a few digits or symbols.
PERSONAL_PASSWORDS = [
    "alice2024",
    "Alice123!",
    "AliceS12",
    "asmith99",
    "smith!23",
    "Smith2024!",
    "alice.smith1",
    "alice.smith@example.com",
    "AliceSmith2024!",
    "alice.smith@example.com!",
    "Smith-Alice-example",
    "Smith-Alice-2024",
    "smithalice1234",
    "AliceSmith#123",
]


def _refusal(password: str, min_length: int, why: str) -> str:
    """The message expected: the length one when too short, else ``why``."""
    return f"at least {min_length}" if len(password) < min_length else why


@pytest.mark.parametrize("min_length", [8, 12])
@pytest.mark.parametrize("password", COMMON_PASSWORDS)
def test_common_passwords_are_refused(password: str, min_length: int) -> None:
    with pytest.raises(WeakPasswordError, match=_refusal(password, min_length, "too common")):
        check_password_policy(password, min_length=min_length)


@pytest.mark.parametrize("min_length", [8, 12])
@pytest.mark.parametrize("password", PERSONAL_PASSWORDS)
def test_passwords_built_from_email_or_names_are_refused(password: str, min_length: int) -> None:
    why = _refusal(password, min_length, "too common|based on your email")
    with pytest.raises(WeakPasswordError, match=why):
        check_password_policy(password, min_length=min_length, identity=ALICE)
    if "alice" in password.lower() or "smith" in password.lower():
        email_only = PasswordIdentity(email="alice.smith@example.com")
        with pytest.raises(WeakPasswordError, match=why):
            check_password_policy(password, min_length=min_length, identity=email_only)


def test_what_remains_without_the_name_must_itself_score_3() -> None:
    # Eight random characters reach the policy's bound on their own, not the score of 3
    # asked of what remains once the name is taken out.
    assert check_password_policy("5cnL5-cL", min_length=8, identity=ALICE) == "5cnL5-cL"
    with pytest.raises(WeakPasswordError, match="based on your email"):
        check_password_policy("Alice5cnL5-cL", min_length=12, identity=ALICE)


def test_identity_only_matters_for_its_own_user() -> None:
    # Not common in itself: only Alice may not use it.
    assert check_password_policy("AliceSmith2024!", min_length=12) == "AliceSmith2024!"


@pytest.mark.parametrize("password", ["correct horse\x00battery staple", "\x00" * 20])
def test_nul_characters_are_refused(password: str) -> None:
    with pytest.raises(WeakPasswordError, match="NUL"):
        check_password_policy(password, min_length=12)
    with pytest.raises(WeakPasswordError):
        hash_password_sync(password, FAST)


@pytest.mark.parametrize("password", ["correct horse \ud800 staple", "\udfff" * 20])
def test_lone_surrogates_are_refused(password: str) -> None:
    with pytest.raises(WeakPasswordError, match="invalid Unicode"):
        check_password_policy(password, min_length=12)
    with pytest.raises(WeakPasswordError):
        hash_password_sync(password, FAST)
    assert verify_password_sync(password, hash_password_sync(STRONG, FAST)) is False


@pytest.mark.parametrize("length", [73, 100, PASSWORD_MAX_LENGTH])
def test_long_passphrases_up_to_128_characters_are_checked(length: int) -> None:
    passphrase = ("velvet quartz ladder fjord plum orbit " * 4)[: length - 1] + "x"
    assert len(passphrase) == length
    assert check_password_policy(passphrase, min_length=12) == passphrase


# --- random passwords of exactly the minimum length ---------------------------------

_MANAGER_CLASSES = (string.ascii_uppercase, string.ascii_lowercase, string.digits, "!@#$%^&*")


def _password_manager(rng: random.Random, length: int) -> str:
    """Like a password manager's default: A-Z a-z 0-9 !@#$%^&*, each at least once."""
    alphabet = "".join(_MANAGER_CLASSES)
    while True:
        password = "".join(rng.choice(alphabet) for _ in range(length))
        if all(any(char in chars for char in password) for chars in _MANAGER_CLASSES):
            return password


def _uniform(alphabet: str) -> Callable[[random.Random, int], str]:
    return lambda rng, length: "".join(rng.choice(alphabet) for _ in range(length))


RANDOM_GENERATORS = {
    "password manager": _password_manager,
    "printable ASCII": _uniform(string.ascii_letters + string.digits + string.punctuation),
    "letters and digits": _uniform(string.ascii_letters + string.digits),
}
RANDOM_SAMPLES = 300


def _shortest_allowed_minimum() -> int:
    """The lower bound of the PASSWORD_MIN_LENGTH setting."""
    field = OrgAuthSettings.model_fields["password_min_length"]
    return next(int(rule.ge) for rule in field.metadata if isinstance(rule, annotated_types.Ge))


def test_an_eight_character_password_passes_when_zxcvbn_finds_no_pattern_in_it() -> None:
    from zxcvbn import zxcvbn

    assert _shortest_allowed_minimum() == 8
    # zxcvbn's brute-force estimate for 8 characters: 10**8 + 1 guesses, the policy's bound
    # but a score of only 2.
    estimate = zxcvbn("5cnL5-cL")
    assert (estimate["guesses"], estimate["score"]) == (MIN_GUESSES + 1, 2)
    assert check_password_policy("5cnL5-cL", min_length=8) == "5cnL5-cL"
    # A keyboard walk over two columns is estimated just below the bound, and refused.
    assert MIN_GUESSES * 0.8 < zxcvbn("zaq1@WSX")["guesses"] < MIN_GUESSES
    with pytest.raises(WeakPasswordError, match="too common"):
        check_password_policy("zaq1@WSX", min_length=8)


@pytest.mark.parametrize("length", [_shortest_allowed_minimum(), 9, 10, 12])
@pytest.mark.parametrize("generator", list(RANDOM_GENERATORS))
def test_random_passwords_of_exactly_the_minimum_length_are_accepted(
    generator: str, length: int
) -> None:
    # A fixed seed per case keeps the sample, and so the outcome, the same on every run.
    rng = random.Random(f"{generator}/{length}")
    refused = []
    for _ in range(RANDOM_SAMPLES):
        password = RANDOM_GENERATORS[generator](rng, length)
        try:
            check_password_policy(password, min_length=length, identity=ALICE)
        except WeakPasswordError:
            refused.append(password)
    # zxcvbn may see a word or a keyboard run in a few random strings; in no more than 5 %.
    assert len(refused) <= RANDOM_SAMPLES * 0.05, refused


# --- normalisation and Unicode -------------------------------------------------------


def test_nfkc_equivalent_passwords_verify_against_each_other() -> None:
    # Fullwidth forms (U+FF01..U+FF5E) and the ideographic space U+3000.
    fullwidth = "".join(
        "\u3000" if char == " " else chr(ord(char) + 0xFEE0) for char in "Correct Horse Battery"
    )
    nfkc = unicodedata.normalize("NFKC", fullwidth)
    assert nfkc == "Correct Horse Battery"
    assert normalize_password(fullwidth) == nfkc
    assert verify_password_sync(nfkc, hash_password_sync(fullwidth, FAST))
    assert verify_password_sync(fullwidth, hash_password_sync(nfkc, FAST))
    # Composed and decomposed accents are the same password, too.
    assert verify_password_sync("cafe\u0301 au lait", hash_password_sync("café au lait", FAST))


@pytest.mark.parametrize(
    "password",
    ["🔐🦄 mot de passe très sûr 🌈", "пароль-очень-надёжный", "密码很安全的一句话吧", "🧑‍🚀🏳️‍🌈"],
)
def test_unicode_and_emoji_passwords_round_trip(password: str) -> None:
    stored = hash_password_sync(password, FAST)
    assert verify_password_sync(password, stored)
    assert not verify_password_sync(password[:-1], stored)
    assert not verify_password_sync(password + "x", stored)


# --- no truncation at bcrypt's 72 bytes ----------------------------------------------


@pytest.mark.parametrize(
    ("prefix", "one", "other"),
    [
        ("a" * 72, "X", "Y"),
        ("a" * 100, "X", "Y"),
        ("é" * 36, "X", "Y"),  # 72 bytes of two-byte characters
        ("€" * 24, "1", "2"),  # 72 bytes of three-byte characters
        ("🔐" * 18, "🦄", "🌈"),  # 72 bytes of four-byte characters
        ("a" * 71 + "é", "X", "Y"),  # a character straddling byte 72
    ],
)
def test_passwords_sharing_the_first_72_bytes_do_not_both_verify(
    prefix: str, one: str, other: str
) -> None:
    assert len(prefix.encode("utf-8")) >= 72
    stored = hash_password_sync(prefix + one, FAST)
    assert verify_password_sync(prefix + one, stored)
    assert not verify_password_sync(prefix + other, stored)
    assert not verify_password_sync(prefix, stored)


# --- stored hashes ------------------------------------------------------------------


def test_hashes_are_prefixed_salted_and_never_contain_the_password() -> None:
    first = hash_password_sync(STRONG, FAST)
    second = hash_password_sync(STRONG, FAST)
    for stored in (first, second):
        assert stored.startswith(HASH_PREFIX + "$2b$04$")
        assert STRONG not in stored
        assert "horse" not in stored
        assert len(stored) <= 255
    assert first != second  # a fresh salt each time


@pytest.mark.parametrize(
    "stored",
    [
        "",
        "plain text",
        "$2b$04$" + "a" * 53,  # bare bcrypt without orgauth's pre-hash: never accepted
        HASH_PREFIX,
        HASH_PREFIX + "garbage",
        HASH_PREFIX + "$2b$04$" + "é" * 53,
        "pbkdf2_sha256$600000$salt$hash",
    ],
)
def test_verifying_against_malformed_hashes_is_false_not_an_error(stored: str) -> None:
    assert verify_password_sync(STRONG, stored) is False


def test_needs_rehash_when_the_cost_is_lower_or_the_scheme_differs() -> None:
    stored = hash_password_sync(STRONG, FAST)
    assert hash_cost(stored) == FAST
    assert needs_rehash(stored, FAST + 1)
    assert not needs_rehash(stored, FAST)
    assert not needs_rehash(stored, FAST - 1)  # a higher cost than required is kept
    assert PasswordHasher(FAST + 1).needs_rehash(stored)
    assert not PasswordHasher(FAST).needs_rehash(stored)
    assert needs_rehash(stored.removeprefix(HASH_PREFIX), FAST)  # foreign scheme
    assert needs_rehash(HASH_PREFIX + "garbage", FAST)


# --- the async hasher -----------------------------------------------------------------


async def test_hasher_round_trips(hasher: PasswordHasher) -> None:
    stored = await hasher.hash(STRONG)
    assert await hasher.verify(STRONG, stored)
    assert not await hasher.verify(STRONG + "!", stored)
    with pytest.raises(WeakPasswordError):
        await hasher.hash("nul\x00inside the password")


async def test_hashing_runs_in_the_bcrypt_threads(
    hasher: PasswordHasher, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads: list[str] = []
    real_hash, real_verify = passwords.hash_password_sync, passwords.verify_password_sync

    def recording_hash(password: str, rounds: int) -> str:
        threads.append(threading.current_thread().name)
        return real_hash(password, rounds)

    def recording_verify(password: str, stored: str) -> bool:
        threads.append(threading.current_thread().name)
        return real_verify(password, stored)

    monkeypatch.setattr(passwords, "hash_password_sync", recording_hash)
    monkeypatch.setattr(passwords, "verify_password_sync", recording_verify)
    stored = await hasher.hash(STRONG)
    await hasher.verify(STRONG, stored)
    await hasher.verify_dummy(STRONG)
    assert len(threads) == 4  # hash, verify, dummy hash, dummy verify
    assert all(name.startswith("orgauth-bcrypt") for name in threads)
    assert threading.current_thread().name not in threads


async def test_event_loop_stays_responsive_during_a_costly_hash() -> None:
    hasher = PasswordHasher(12)  # the production default: about a quarter of a second
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    task = asyncio.create_task(ticker())
    try:
        started = time.perf_counter()
        stored = await hasher.hash(STRONG)
        elapsed = time.perf_counter() - started
    finally:
        task.cancel()
        hasher.close()
    assert hash_cost(stored) == 12
    # Had bcrypt run on the loop, the ticker could not have ticked until it was over.
    assert ticks >= max(3, int(elapsed / 0.01 * 0.3))


async def test_verify_dummy_spends_the_time_of_a_verification() -> None:
    hasher = PasswordHasher(10)

    async def fastest(action: Callable[[], Awaitable[object]]) -> float:
        # The minimum of a few runs filters out scheduling noise on a busy machine.
        timings = []
        for _ in range(3):
            started = time.perf_counter()
            await action()
            timings.append(time.perf_counter() - started)
        return min(timings)

    try:
        stored = await hasher.hash(STRONG)
        await hasher.verify_dummy(STRONG)  # the first call also prepares the dummy hash
        real = await fastest(lambda: hasher.verify(STRONG, stored))
        dummy = await fastest(lambda: hasher.verify_dummy(STRONG))
    finally:
        hasher.close()
    assert dummy > real * 0.5  # the same bcrypt work at the same cost


async def test_closed_hasher_can_be_used_again(hasher: PasswordHasher) -> None:
    hasher.close()
    assert await hasher.verify(STRONG, await hasher.hash(STRONG))


# --- properties ---------------------------------------------------------------------

# Arbitrary text, with the characters that historically break hashing mixed in.
_hostile_text = st.text(
    alphabet=st.one_of(
        st.characters(exclude_categories=()),
        st.sampled_from(["\x00", "\ud800", "\udfff", "\ufdfa", "é", "🔐", "\u0301"]),
    ),
    max_size=PASSWORD_MAX_LENGTH,
)
_property_settings = settings(
    max_examples=50,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@_property_settings
@given(password=_hostile_text)
def test_hashing_any_text_round_trips_or_refuses_cleanly(password: str) -> None:
    try:
        normalized = normalize_password(password)
    except WeakPasswordError:
        with pytest.raises(WeakPasswordError):
            hash_password_sync(password, FAST)
        return
    stored = hash_password_sync(password, FAST)
    assert stored.startswith(HASH_PREFIX)
    assert verify_password_sync(password, stored)
    assert verify_password_sync(normalized, stored)
    assert not verify_password_sync(normalized + "\u2603", stored)


@_property_settings
@given(password=_hostile_text, stored=st.sampled_from(["", HASH_PREFIX + "$2b$04$x"]))
def test_verifying_any_text_never_raises(password: str, stored: str) -> None:
    assert verify_password_sync(password, stored) is False


_KNOWN_HASH = hash_password_sync(STRONG, FAST)


@_property_settings
@given(password=_hostile_text)
def test_verifying_any_text_against_a_real_hash_never_raises(password: str) -> None:
    assert verify_password_sync(password, _KNOWN_HASH) is (
        unicodedata.normalize("NFKC", password) == STRONG
    )


def _normalizes_within(text: str, limit: int) -> bool:
    try:
        return len(normalize_password(text)) <= limit
    except WeakPasswordError:
        return True


# Up to twice the maximum length, so over-long input is exercised too.
@_property_settings
@given(
    password=_hostile_text.map(lambda text: text[: 2 * PASSWORD_MAX_LENGTH]).filter(
        lambda text: _normalizes_within(text, 2 * PASSWORD_MAX_LENGTH)
    ),
    email=st.emails(),
)
def test_policy_refuses_only_with_weak_password_error(password: str, email: str) -> None:
    try:
        result = check_password_policy(
            password, min_length=8, identity=PasswordIdentity(email=email)
        )
    except WeakPasswordError:
        return
    assert result == unicodedata.normalize("NFKC", password)
    assert 8 <= len(result) <= PASSWORD_MAX_LENGTH
