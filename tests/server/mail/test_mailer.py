"""The mailers against real things: an SMTP server (aiosmtpd) on loopback, and .eml files in a folder."""

from __future__ import annotations

import logging
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import pytest

from tests.support.smtp_server import smtp_server
from tests.support.wattfare_server import free_port
from wattfare.server.mail.courier import Courier
from wattfare.server.mail.letters import app_connected_letter
from wattfare.server.mail.mailer import DEFAULT_OUTBOX, OutboxMailer, SmtpMailer, mailer_for, outbox_folder
from wattfare.server.mail.message import Email, masked
from wattfare.server.settings import Settings, SmtpServer

pytestmark = pytest.mark.anyio

SENDER = "Wattfare <no-reply@wattfare.test>"


async def test_the_smtp_mailer_logs_in_and_delivers_a_plain_text_email_to_a_real_smtp_server() -> None:
    with smtp_server("mailer", "p@ss word") as server:
        settings = Settings.from_env({"WATTFARE_SMTP_URL": server.url.replace("p@ss word", "p%40ss%20word")})
        smtp = settings.smtp_server
        assert smtp is not None
        await SmtpMailer(smtp, SENDER).send(Email("ada@example.com", "Hello", "A line.\n"))
        [received] = server.to("ada@example.com")
    assert received.login == "mailer"
    assert received.mail_from == "no-reply@wattfare.test"
    assert received.message["From"] == SENDER
    assert received.message["To"] == "ada@example.com"
    assert received.message["Subject"] == "Hello"
    assert received.message["Message-ID"].endswith("@wattfare.test>")
    assert received.message["Date"]
    assert received.text == "A line.\n"


async def test_a_wrong_smtp_password_raises_and_nothing_is_delivered() -> None:
    with smtp_server("mailer", "right") as server:
        smtp = SmtpServer("127.0.0.1", server.port, "plain", "mailer", "wrong")
        with pytest.raises(Exception, match="535"):
            await SmtpMailer(smtp, SENDER).send(Email("ada@example.com", "Hello", "A line.\n"))
        assert server.received == []


async def test_the_outbox_mailer_writes_an_eml_file_and_logs_one_masked_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    outbox = tmp_path / "mail"
    with caplog.at_level(logging.INFO, logger="wattfare.server"):
        await OutboxMailer(outbox, SENDER).send(Email("ada@example.com", "Reset", "Go to http://x/y?token=abc\n"))
    [path] = list(outbox.glob("*.eml"))
    message = message_from_bytes(path.read_bytes(), policy=policy.default)
    assert isinstance(message, EmailMessage)
    assert (message["To"], message["Subject"], message["From"]) == ("ada@example.com", "Reset", SENDER)
    # Readable as written: the link is whole in the file, not quoted-printable.
    assert b"http://x/y?token=abc" in path.read_bytes()
    assert [record.getMessage() for record in caplog.records] == [f"mail to a***@example.com: Reset → {path}"]
    assert "ada@" not in caplog.text


def test_the_outbox_sits_beside_the_sqlite_database_else_in_the_dev_folder(tmp_path: Path) -> None:
    assert outbox_folder(f"sqlite:///{tmp_path}/wattfare.db") == tmp_path / "mail"
    assert outbox_folder("sqlite:///.wattfare/wattfare.db") == Path(".wattfare/mail") == DEFAULT_OUTBOX
    assert outbox_folder("postgresql://postgres@127.0.0.1/db") == DEFAULT_OUTBOX
    assert isinstance(mailer_for(Settings.from_env({})), OutboxMailer)
    assert isinstance(mailer_for(Settings.from_env({"WATTFARE_SMTP_URL": "smtp://127.0.0.1:2525"})), SmtpMailer)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("smtp://relay.example.com", SmtpServer("relay.example.com", 25, "plain")),
        ("smtp://u:p@relay.example.com?starttls=true", SmtpServer("relay.example.com", 587, "starttls", "u", "p")),
        ("smtps://u:p%2Fq@relay.example.com", SmtpServer("relay.example.com", 465, "tls", "u", "p/q")),
        ("smtp://relay.example.com:2525?starttls=false", SmtpServer("relay.example.com", 2525, "plain")),
    ],
)
def test_smtp_urls_name_the_server_its_security_and_login(url: str, expected: SmtpServer) -> None:
    assert Settings.from_env({"WATTFARE_SMTP_URL": url}).smtp_server == expected


@pytest.mark.parametrize(
    ("environ", "complaint"),
    [
        ({"WATTFARE_SMTP_URL": "http://relay.example.com"}, "WATTFARE_SMTP_URL must look like"),
        ({"WATTFARE_SMTP_URL": "smtp://"}, "WATTFARE_SMTP_URL must look like"),
        ({"WATTFARE_SMTP_URL": "smtp://relay.example.com:port"}, "not a number"),
        ({"WATTFARE_SMTP_URL": "smtp://relay.example.com?starttls=yes"}, "starttls must be"),
        ({"WATTFARE_SMTP_URL": "smtps://relay.example.com?starttls=true"}, "TLS from the start"),
        ({"WATTFARE_MAIL_FROM": "wattfare"}, "WATTFARE_MAIL_FROM must be an email address"),
        ({"WATTFARE_MAIL_FROM": "a@b.c\nBcc: x@y.z"}, "WATTFARE_MAIL_FROM must be an email address"),
    ],
)
def test_a_wrong_mail_setting_is_refused_naming_the_variable(environ: dict[str, str], complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint):
        Settings.from_env(environ)


def test_the_password_of_the_smtp_url_is_not_in_the_settings_repr() -> None:
    settings = Settings.from_env({"WATTFARE_SMTP_URL": "smtp://u:hunter2@relay.example.com"})
    assert "hunter2" not in repr(settings.smtp_server)


def test_addresses_are_masked_for_log_lines() -> None:
    assert masked("ada@example.com") == "a***@example.com"
    assert masked("not an address") == "***"


async def test_a_line_break_in_an_app_name_cannot_add_a_header() -> None:
    letter = app_connected_letter("ada@example.com", "Evil\r\nBcc: eve@example.com", "$5.00", "http://x/account")
    with smtp_server() as server:
        await SmtpMailer(SmtpServer("127.0.0.1", server.port, "plain"), SENDER).send(letter)
        [received] = server.received
    assert received.recipients == ["ada@example.com"]
    assert received.message["Bcc"] is None
    assert received.message["Subject"] == "Evil Bcc: eve@example.com was connected to your Wattfare budget"


async def test_the_courier_sends_after_the_caller_moves_on_and_logs_a_failure_without_raising(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with smtp_server() as server:
        courier = Courier(SmtpMailer(SmtpServer("127.0.0.1", server.port, "plain"), SENDER))
        courier.send_soon(Email("ada@example.com", "One", "1\n"))
        assert server.received == []  # handed over, not sent yet: the caller did not wait
        await courier.drain()
        assert [r.message["Subject"] for r in server.to("ada@example.com")] == ["One"]
    # Nothing listens on this port now: the send fails, the courier logs it and `drain` returns.
    closed = Courier(SmtpMailer(SmtpServer("127.0.0.1", free_port(), "plain"), SENDER, timeout=5))
    closed.send_soon(Email("bob@example.com", "Two", "2\n"))
    await closed.drain()
    assert "mail to b***@example.com not sent: ConnectionRefusedError" in caplog.text


async def test_a_composer_that_returns_none_sends_nothing(tmp_path: Path) -> None:
    async def nothing() -> Email | None:
        return None

    courier = Courier(OutboxMailer(tmp_path / "mail", SENDER))
    courier.compose_and_send_soon(nothing)
    await courier.drain()
    assert not (tmp_path / "mail").exists()
