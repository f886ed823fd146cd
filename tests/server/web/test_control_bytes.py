"""Stray bytes in a request's headers: refused by uvicorn's parser, or answered by the app in the error envelope.

Under `wattfare serve` (uvicorn, httptools) a control byte other than HTAB in a header value never reaches the
app: the parser answers a plain-text 400 (pinned here, and in the README's Security section). Every other byte
does reach it, and must be answered in the envelope, never with a 5xx. In-process every byte reaches the app.
"""

from __future__ import annotations

import socket
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx
import orjson
import pytest

from tests.server.web.pages_client import pages
from tests.support.wattfare_server import wattfare_process

BODY = b'{"model":"openai/gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}'
# What llhttp refuses in a header value: the control bytes, except HTAB.
CONTROL_BYTES = frozenset([*range(0x09), *range(0x0A, 0x20), 0x7F])
DIGITS = frozenset(range(0x30, 0x3A))


@dataclass
class Answer:
    status: int
    content_type: str
    body: bytes

    @property
    def refused_by_the_parser(self) -> bool:
        """The HTTP parser refused the request: `wattfare serve` answers that in the error envelope too."""
        return (
            self.status == 400
            and self.content_type == "application/json"
            and self.envelope()["message"] == PARSER_REFUSAL
        )

    def envelope(self) -> dict[str, object]:
        assert self.content_type == "application/json", self
        error = orjson.loads(self.body)["error"]
        assert set(error) >= {"code", "message", "type", "param"}, error
        return error


PARSER_REFUSAL = "The request is not valid HTTP/1.1 (a control character in a header, or a malformed line)."


def exchange(port: int, request: bytes) -> Answer:
    """Send raw bytes on a new connection; read the answer until the server closes it."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(request)
        received = b""
        while chunk := connection.recv(65536):
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    fields = dict(line.lower().split(": ", 1) for line in lines[1:])
    return Answer(int(lines[0].split(" ")[1]), fields.get("content-type", ""), body)


def completion_request(secret: str, header: str, value: bytes) -> bytes:
    """A valid completion request, but for `header: value` (replacing the one it would have had)."""
    fields = {
        "Host": b"127.0.0.1",
        "Authorization": b"Bearer " + secret.encode(),
        "Wattfare-User": b"u1",
        "Content-Type": b"application/json",
        "Content-Length": str(len(BODY)).encode(),
    } | {header: value}
    head = b"".join(name.encode() + b": " + field + b"\r\n" for name, field in fields.items())
    return b"POST /api/v1/chat/completions HTTP/1.1\r\n" + head + b"Connection: close\r\n\r\n" + BODY


def port_of(base_url: str) -> int:
    return int(base_url.rsplit(":", 1)[1])


@pytest.mark.parametrize("header", ["Wattfare-User", "Authorization"])
def test_under_wattfare_serve_only_control_bytes_stop_at_the_parser_and_the_rest_get_the_envelope(
    tmp_path: Path, header: str
) -> None:
    with wattfare_process(tmp_path) as server:
        refused: set[int] = set()
        for byte in range(256):
            value = b"u" + bytes([byte]) + b"v" if header == "Wattfare-User" else f"Bearer {server.secret}".encode()
            if header == "Authorization":
                value += bytes([byte])
            answer = exchange(port_of(server.base_url), completion_request(server.secret, header, value))
            if answer.refused_by_the_parser:
                refused.add(byte)
                continue
            assert answer.status < 500, (byte, answer)
            if answer.status != 200:
                error = answer.envelope()
                assert (answer.status, error["code"]) in {(400, "invalid_request"), (401, "auth")}, (byte, error)
        assert refused == CONTROL_BYTES


def test_under_wattfare_serve_a_content_length_is_digits_or_the_parser_refuses_it(tmp_path: Path) -> None:
    with wattfare_process(tmp_path) as server:
        length = str(len(BODY)).encode()
        for byte in sorted(set(range(256)) - DIGITS):
            for value in (length + bytes([byte]), bytes([byte]) + length):
                answer = exchange(port_of(server.base_url), completion_request(server.secret, "Content-Length", value))
                if byte in (0x09, 0x20):  # whitespace around the value: the app sees it, and answers
                    assert answer.status in (200, 400), (value, answer)
                    if answer.status == 400:
                        assert answer.envelope()["code"] == "invalid_request"
                else:
                    assert answer.refused_by_the_parser, (value, answer)


def test_with_the_envelope_protocol_what_the_parser_refuses_is_answered_in_the_envelope(tmp_path: Path) -> None:
    # `wattfare serve` runs uvicorn with the envelope protocol (`HTTP_PROTOCOL`).
    with wattfare_process(tmp_path) as server:
        port = server.port
        for byte in sorted(CONTROL_BYTES):
            answer = exchange(port, completion_request("sk_test_x", "Wattfare-User", b"u" + bytes([byte]) + b"v"))
            assert answer.status == 400
            assert answer.envelope() == {
                "code": "invalid_request",
                "message": PARSER_REFUSAL,
                "type": "invalid_request_error",
                "param": None,
            }
        line = exchange(port, b"GET /healthz\x01 HTTP/1.1\r\nHost: x\r\n\r\n")
        assert (line.status, line.envelope()["code"]) == (400, "invalid_request")
        assert httpx.get(f"http://127.0.0.1:{port}/healthz").json() == {"ok": True}


# -- in-process: every byte reaches the app


def header_cases(secret: str, token: str, publishable: str) -> list[tuple[str, str, dict[str, bytes], bytes]]:
    """(method, path, headers, body) with `\\xBB` in a header value where a byte goes."""
    bearer, session = f"Bearer {secret}".encode(), f"Bearer {token}".encode()
    return [
        ("POST", "/api/v1/chat/completions", {"wattfare-user": b"u\xbbv"}, BODY),
        ("POST", "/api/v1/chat/completions", {"wattfare-user": b"\xbb"}, BODY),
        ("POST", "/api/v1/chat/completions", {"authorization": bearer + b"\xbb"}, BODY),
        ("POST", "/api/v1/chat/completions", {"authorization": b"\xbb"}, BODY),
        ("POST", "/api/v1/chat/completions", {"content-type": b"application/json\xbb"}, BODY),
        ("POST", "/api/v1/sessions", {"authorization": bearer + b"\xbb"}, b'{"appUserId":"u"}'),
        ("GET", "/api/v1/connections", {"authorization": session + b"\xbb"}, b""),
        ("GET", "/api/v1/connections", {"authorization": session, "wattfare-publishable-key": b"pk_\xbb"}, b""),
        (
            "GET",
            "/api/v1/connections",
            {"authorization": session, "wattfare-publishable-key": publishable.encode()},
            b"",
        ),
        ("GET", "/api/v1/status?appUserId=u%BB", {"authorization": bearer}, b""),
        ("DELETE", "/api/v1/connections/u%BB", {"authorization": bearer}, b""),
        ("GET", "/login", {"cookie": b"wattfare_browser=a\xbb"}, b""),
        ("GET", "/login", {"cookie": b"wattfare_session=a\xbb"}, b""),
        (
            "POST",
            "/login",
            {"cookie": b"wattfare_known=a\xbb.b", "content-type": b"application/x-www-form-urlencoded"},
            b"",
        ),
        ("POST", "/login", {"origin": b"http://a\xbb", "content-type": b"application/x-www-form-urlencoded"}, b""),
    ]


def raw_request(
    client: httpx.AsyncClient, method: str, path: str, headers: Mapping[bytes, bytes], body: bytes = b""
) -> httpx.Request:
    """A request carrying exactly `headers` (as bytes: httpx would refuse to encode some of them)."""
    request = client.build_request(method, path, content=body or None)
    fields = {name.encode(): value.encode() for name, value in request.headers.items()} | dict(headers)
    request.headers = httpx.Headers(list(fields.items()))
    return request


def with_byte(value: bytes, byte: int) -> bytes:
    return value.replace(b"\xbb", bytes([byte])).replace(b"%BB", f"%{byte:02X}".encode())


@pytest.mark.anyio
async def test_in_process_every_byte_in_a_header_the_app_reads_is_answered_below_500(database_url: str) -> None:
    async with pages(database_url) as site, site.browser() as client:
        secret = site.app.secret_keys["test"]
        minted = await client.post(
            "/api/v1/sessions", json={"appUserId": "u1"}, headers={"Authorization": f"Bearer {secret}"}
        )
        cases = header_cases(secret, minted.json()["token"], site.app.publishable_keys["test"])
        for byte in range(256):
            for method, path, headers, body in cases:
                fields = {b"content-type": b"application/json", b"authorization": f"Bearer {secret}".encode()}
                fields |= {b"wattfare-user": b"u1"}
                fields |= {name.encode(): with_byte(value, byte) for name, value in headers.items()}
                request = raw_request(client, method, with_byte(path.encode(), byte).decode(), fields, body)
                answer = await client.send(request)
                assert answer.status_code < 500, (byte, method, path, headers, answer.text)
                if path.startswith("/api/") and answer.status_code >= 400:
                    assert set(answer.json()["error"]) >= {"code", "message", "type", "param"}


@pytest.mark.anyio
async def test_in_process_a_content_length_of_superscript_digits_is_refused_in_the_envelope(tmp_path: Path) -> None:
    async with pages(f"sqlite:///{tmp_path / 'wattfare.db'}") as site, site.browser() as client:
        secret = site.app.secret_keys["test"]
        headers = {b"authorization": f"Bearer {secret}".encode(), b"wattfare-user": b"u1", b"content-length": b"7\xb2"}
        answer = await client.send(raw_request(client, "POST", "/api/v1/chat/completions", headers, BODY))
        assert answer.status_code == 400, answer.text


@pytest.mark.anyio
async def test_in_process_an_origin_with_a_nul_is_refused_in_the_envelope(database_url: str) -> None:
    async with pages(database_url) as site, site.browser() as client:
        answer = await client.send(raw_request(client, "GET", "/api/v1/connections", {b"origin": b"http://a\x00"}))
        assert answer.status_code == 403
        assert answer.json()["error"]["code"] == "auth"
