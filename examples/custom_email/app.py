"""Send orgauth's emails your own way: a custom EmailSender plus event hooks.

* ``email_sender=``: any object with ``async send(EmailMessage)`` replaces the configured
  backend (console, file or SMTP) for every email orgauth sends.
* ``on_password_reset_requested``: the hook gets the reset link and token and sends the
  email itself, in the host's words; orgauth then sends nothing.
* ``on_email_verification_requested``: the same for the verification link that follows a
  sign-up (or ``POST /auth/verify-email/request``) and for the link that confirms a new
  address (``POST /users/me/email``).
* ``on_register``: a welcome email after each sign-up.

Here the "provider" is an in-memory outbox that also logs each message; swap in your email
service's API client. Run from the repository root:
`export DATABASE_URL=sqlite:///./example-custom-email.db`, `orgauth migrate apply`, then
`uvicorn examples.custom_email.app:app` (or `python examples/custom_email/app.py`).
"""

import logging

from fastapi import FastAPI

from orgauth import (
    EmailMessage,
    OrgAuth,
    OrgAuthSettings,
    ResetDelivery,
    User,
    VerificationDelivery,
)

logger = logging.getLogger("example.email")
if not logger.handlers:  # show the example's log lines however it is started
    logger.addHandler(logging.StreamHandler())
    logger.setLevel(logging.INFO)


class OutboxEmailSender:
    """An EmailSender that keeps every message in memory and logs its recipient and subject.

    ``send`` must not block the event loop: call your provider with an async client, or
    hand the work to a thread or a task queue.
    """

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []

    async def send(self, message: EmailMessage) -> None:
        self.messages.append(message)
        logger.info("email sent to %s: %s", message.to, message.subject)


settings = OrgAuthSettings()  # DATABASE_URL, SECRET_KEY, ... from the environment or .env
if settings.database_url is None and settings.postgres_host is None:
    # Nothing configured: this example's own file, so the examples never share a database.
    settings = OrgAuthSettings(database_url="sqlite:///./example-custom-email.db")
outbox = OutboxEmailSender()
auth = OrgAuth(settings, email_sender=outbox)
app = FastAPI(title="custom email orgauth example", lifespan=auth.lifespan)
auth.install(app)


async def send_welcome(user: User) -> None:
    """After a registration is committed. A failure here is logged; sign-up still succeeds."""
    name = user.first_name or "there"
    await outbox.send(
        EmailMessage(
            to=user.email,
            subject="Welcome to Example",
            text=f"Hi {name},\n\nyour Example account is ready.\n",
        )
    )


async def send_reset(delivery: ResetDelivery) -> None:
    """Runs after the response (so its timing reveals nothing). ``reset_url`` is built from
    FRONTEND_URL and carries the single-use token; never log either."""
    await outbox.send(
        EmailMessage(
            to=delivery.email,
            subject="Your Example password reset link",
            text=(
                "Someone asked to reset your Example password. To choose a new one, open\n\n"
                f"{delivery.reset_url}\n\n"
                "If it was not you, ignore this email.\n"
            ),
        )
    )


async def send_verification(delivery: VerificationDelivery) -> None:
    """Runs after the response, like ``send_reset``; ``url`` carries the single-use token.

    ``purpose`` is ``"verify"`` (prove the account's address) or ``"change"`` (the user asked
    to move the account to ``delivery.email``, the new address)."""
    if delivery.purpose == "change":
        subject = "Confirm your new Example email address"
        text = (
            "Someone asked to move an Example account to this address. To confirm, open\n\n"
            f"{delivery.url}\n\n"
            "If it was not you, ignore this email: nothing changes.\n"
        )
    else:
        subject = "Confirm your Example email address"
        text = f"Please confirm your address for Example by opening\n\n{delivery.url}\n"
    await outbox.send(EmailMessage(to=delivery.email, subject=subject, text=text))


auth.hooks.on_register.append(send_welcome)
auth.hooks.on_password_reset_requested.append(send_reset)
auth.hooks.on_email_verification_requested.append(send_verification)


if __name__ == "__main__":
    import uvicorn

    uvicorn.run(app, host="127.0.0.1", port=8000)
