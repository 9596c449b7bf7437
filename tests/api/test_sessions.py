"""GET /sessions/me and DELETE /sessions/{id} (docs/API.md, docs/SECURITY.md)."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import httpx
import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from orgauth.models import (
    BROWSER_MAX_LENGTH,
    DEVICE_NAME_MAX_LENGTH,
    IP_MAX_LENGTH,
    OS_MAX_LENGTH,
    USER_AGENT_MAX_LENGTH,
    UserSession,
    utcnow,
)
from tests.support.http import (
    API,
    CHROME_WINDOWS_UA,
    IPHONE_SAFARI_UA,
    PASSWORD,
    PEER_IP,
    SESSION_KEYS,
    ClientFactory,
    LoggedIn,
    UserFactory,
    assert_error,
    assert_session_alive,
    assert_session_dead,
    bearer,
    execute,
    fetch,
    logged_in_from,
    login,
    refresh,
    register,
    sign_in,
    unique_email,
    unverified_claims,
)

MY_SESSIONS = f"{API}/sessions/me"


def session_url(session_id: uuid.UUID | str) -> str:
    return f"{API}/sessions/{session_id}"


async def list_sessions(client: httpx.AsyncClient, session: LoggedIn) -> list[dict[str, object]]:
    response = await client.get(MY_SESSIONS, headers=session.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"sessions", "total"}
    assert body["total"] == len(body["sessions"])
    sessions: list[dict[str, object]] = body["sessions"]
    return sessions


async def stored_session(engine: AsyncEngine, session_id: uuid.UUID) -> UserSession:
    row: UserSession = (
        await fetch(engine, select(UserSession).where(UserSession.id == session_id))
    )[0]
    return row


async def test_list_shows_devices_most_recently_used_first(
    client: httpx.AsyncClient, make_user: UserFactory
) -> None:
    desktop = await make_user(user_agent=CHROME_WINDOWS_UA)
    phone = await sign_in(client, desktop.email, user_agent=IPHONE_SAFARI_UA)

    listed = await list_sessions(client, phone)

    assert [s["id"] for s in listed] == [str(phone.session_id), str(desktop.session_id)]
    newest, oldest = listed
    for item in listed:
        assert set(item) == SESSION_KEYS
        assert item["ip_address"] == PEER_IP
        for field in ("created_at", "last_used_at", "expires_at"):
            stamp = datetime.fromisoformat(str(item[field]).replace("Z", "+00:00"))
            assert stamp.utcoffset() == timedelta(0)
    assert newest["is_current"] is True
    assert oldest["is_current"] is False
    assert newest["device_type"] == "mobile"
    assert newest["device_name"] == "Safari on iPhone"
    assert str(newest["browser"]).startswith("Safari")
    assert str(newest["os"]).startswith("iOS")
    assert oldest["device_type"] == "desktop"
    assert oldest["device_name"] == "Chrome on Windows"
    assert str(oldest["browser"]).startswith("Chrome")
    assert str(oldest["os"]).startswith("Windows")


async def test_refreshing_moves_a_session_to_the_top(
    client: httpx.AsyncClient, make_user: UserFactory
) -> None:
    desktop = await make_user(user_agent=CHROME_WINDOWS_UA)
    phone = await sign_in(client, desktop.email, user_agent=IPHONE_SAFARI_UA)

    rotated = logged_in_from(
        await refresh(client, desktop.refresh_token), desktop.email, desktop.password
    )

    listed = await list_sessions(client, phone)
    assert [s["id"] for s in listed] == [str(desktop.session_id), str(phone.session_id)]
    current = [s["id"] for s in await list_sessions(client, rotated) if s["is_current"]]
    assert current == [str(desktop.session_id)]


async def test_list_marks_exactly_the_callers_session_current(
    client: httpx.AsyncClient, make_user: UserFactory
) -> None:
    sessions = [await make_user()]
    sessions += [await sign_in(client, sessions[0].email) for _ in range(3)]

    for caller in sessions:
        listed = await list_sessions(client, caller)
        assert len(listed) == 4
        assert [s["id"] for s in listed if s["is_current"]] == [str(caller.session_id)]


async def test_list_omits_revoked_expired_and_other_users_sessions(
    client: httpx.AsyncClient, make_user: UserFactory, db: AsyncEngine
) -> None:
    caller = await make_user()
    logged_out = await sign_in(client, caller.email)
    expired = await sign_in(client, caller.email)
    stranger = await make_user()
    assert (await client.post(f"{API}/auth/logout", headers=logged_out.headers)).is_success
    await execute(
        db,
        update(UserSession)
        .where(UserSession.id == expired.session_id)
        .values(expires_at=utcnow() - timedelta(seconds=1)),
    )

    listed = await list_sessions(client, caller)

    assert [s["id"] for s in listed] == [str(caller.session_id)]
    assert str(stranger.session_id) not in {s["id"] for s in listed}


async def test_huge_user_agent_is_accepted_and_stored_bounded(
    client: httpx.AsyncClient, db: AsyncEngine
) -> None:
    address = unique_email()
    await register(client, address)
    huge = CHROME_WINDOWS_UA + " " + "A" * 10_000 + "\x07"

    response = await login(client, address, user_agent=huge)

    assert response.status_code == 200
    session = logged_in_from(response, address, "")
    row = await stored_session(db, session.session_id)
    assert row.user_agent is not None
    assert len(row.user_agent) <= USER_AGENT_MAX_LENGTH
    assert row.user_agent.isprintable()
    assert len(row.device_name or "") <= DEVICE_NAME_MAX_LENGTH
    assert len(row.browser or "") <= BROWSER_MAX_LENGTH
    assert len(row.os or "") <= OS_MAX_LENGTH
    assert row.device_type == "desktop"


async def test_missing_user_agent_gives_unknown_device(
    client: httpx.AsyncClient, make_user: UserFactory
) -> None:
    caller = await make_user()
    address = caller.email
    response = await client.post(
        f"{API}/auth/login",
        json={"email": address, "password": caller.password},
        headers={"User-Agent": ""},
    )
    bare = logged_in_from(response, address, caller.password)

    listed = {s["id"]: s for s in await list_sessions(client, bare)}

    assert listed[str(bare.session_id)]["device_type"] == "unknown"


async def test_forwarded_for_from_untrusted_peer_is_ignored(
    client: httpx.AsyncClient, db: AsyncEngine
) -> None:
    address = unique_email()
    await register(client, address)

    session = await sign_in(client, address, headers={"X-Forwarded-For": "198.51.100.7"})

    assert (await stored_session(db, session.session_id)).ip_address == PEER_IP


@pytest.mark.parametrize(
    ("forwarded_for", "expected"),
    [
        ("198.51.100.7", "198.51.100.7"),
        ("192.0.2.99, 198.51.100.7", "198.51.100.7"),
        ("not-an-ip", PEER_IP),
        ("::ffff:198.51.100.8", "198.51.100.8"),
    ],
)
async def test_forwarded_for_from_trusted_proxy_is_recorded(
    make_app: ClientFactory, db: AsyncEngine, forwarded_for: str, expected: str
) -> None:
    client = (await make_app(forwarded_allow_ips=[PEER_IP])).client
    address = unique_email()
    await register(client, address)

    session = await sign_in(client, address, headers={"X-Forwarded-For": forwarded_for})

    ip_address = (await stored_session(db, session.session_id)).ip_address
    assert ip_address == expected
    assert len(ip_address or "") <= IP_MAX_LENGTH


async def test_forwarded_for_sent_as_several_lines_reads_every_line(
    make_app: ClientFactory, db: AsyncEngine
) -> None:
    # The client forges a first line; the trusted proxy appends the real address as a
    # second line. Only reading every line finds the proxy's entry.
    client = (await make_app(forwarded_allow_ips=[PEER_IP])).client
    address = unique_email()
    await register(client, address)

    response = await client.post(
        f"{API}/auth/login",
        json={"email": address, "password": PASSWORD},
        headers=[("X-Forwarded-For", "192.0.2.66"), ("X-Forwarded-For", "198.51.100.7")],
    )

    assert response.status_code == 200, response.text
    session_id = uuid.UUID(unverified_claims(response.json()["access_token"])["sid"])
    assert (await stored_session(db, session_id)).ip_address == "198.51.100.7"


async def test_revoking_a_session_kills_its_tokens_at_once(
    client: httpx.AsyncClient, make_user: UserFactory, db: AsyncEngine
) -> None:
    caller = await make_user()
    other = await sign_in(client, caller.email)

    response = await client.delete(session_url(other.session_id), headers=caller.headers)

    assert response.status_code == 204
    assert response.content == b""
    await assert_session_dead(client, other)
    await assert_session_alive(client, caller)
    assert (await stored_session(db, other.session_id)).revoked_reason == "revoked"


async def test_revoking_the_current_session_signs_the_caller_out(
    client: httpx.AsyncClient, make_user: UserFactory
) -> None:
    caller = await make_user()

    response = await client.delete(session_url(caller.session_id), headers=caller.headers)

    assert response.status_code == 204
    await assert_session_dead(client, caller)


async def test_revoking_another_users_session_is_404_like_unknown(
    client: httpx.AsyncClient, make_user: UserFactory, db: AsyncEngine
) -> None:
    attacker = await make_user()
    victim = await make_user()

    foreign = await client.delete(session_url(victim.session_id), headers=attacker.headers)
    unknown = await client.delete(session_url(uuid.uuid4()), headers=attacker.headers)

    assert_error(foreign, 404, "SESSION_NOT_FOUND")
    assert_error(unknown, 404, "SESSION_NOT_FOUND")
    assert foreign.json() == unknown.json()
    assert (await stored_session(db, victim.session_id)).revoked_at is None
    await assert_session_alive(client, victim)


async def test_revoking_an_already_revoked_session_is_404(
    client: httpx.AsyncClient, make_user: UserFactory
) -> None:
    caller = await make_user()
    other = await sign_in(client, caller.email)
    assert (await client.delete(session_url(other.session_id), headers=caller.headers)).is_success

    again = await client.delete(session_url(other.session_id), headers=caller.headers)

    assert_error(again, 404, "SESSION_NOT_FOUND")


@pytest.mark.parametrize("bad_id", ["not-a-uuid", "1", "' OR 1=1 --", "0" * 100])
async def test_revoking_a_malformed_session_id_is_422(
    client: httpx.AsyncClient, make_user: UserFactory, bad_id: str
) -> None:
    caller = await make_user()

    response = await client.delete(session_url(bad_id), headers=caller.headers)

    assert response.status_code == 422
    await assert_session_alive(client, caller)


async def test_session_routes_require_authentication(client: httpx.AsyncClient) -> None:
    assert_error(await client.get(MY_SESSIONS), 401, "NOT_AUTHENTICATED")
    assert_error(await client.delete(session_url(uuid.uuid4())), 401, "NOT_AUTHENTICATED")
    assert_error(await client.get(MY_SESSIONS, headers=bearer("not.a.token")), 401, "INVALID_TOKEN")
