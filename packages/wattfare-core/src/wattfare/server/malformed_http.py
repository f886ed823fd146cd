"""Requests the HTTP parser refuses, answered in Wattfare's error envelope instead of uvicorn's plain text.

uvicorn's httptools (llhttp) parser refuses a request before the app sees it when a header value holds a
control byte other than HTAB (0x00-0x08, 0x0A-0x1F, 0x7F), a header name holds anything but a token
character, the request target holds a control byte or a byte above 0x7F, or `Content-Length` is not all
digits; uvicorn then writes `400 Invalid HTTP request received.` as text/plain and closes the connection.
The app cannot answer those requests: only the protocol object that owns the connection can.

`EnvelopeHttpToolsProtocol` is uvicorn's httptools protocol with that one answer replaced by the documented
JSON envelope (`invalid_request`, 400), so every client parses it like any other refusal. The parser, and
what it refuses, are unchanged: being lenient about such bytes (llhttp's `lenient_headers`) would expose the
server to request smuggling. Select it with `uvicorn.run(..., http=HTTP_PROTOCOL)` (an import string, which
uvicorn resolves in each worker process).
"""

from __future__ import annotations

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from wattfare.server.errors import invalid

HTTP_PROTOCOL = "wattfare.server.malformed_http:EnvelopeHttpToolsProtocol"

_BODY = invalid("The request is not valid HTTP/1.1 (a control character in a header, or a malformed line).")
_ENVELOPE = _BODY.response().body


class EnvelopeHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, answering unparsable requests in the error envelope."""

    def send_400_response(self, msg: str) -> None:
        """Write the 400 envelope and close the connection, as uvicorn does with its plain-text answer."""
        del msg  # uvicorn's text ("Invalid HTTP request received.") is replaced by the envelope's message.
        lines = [b"HTTP/1.1 400 Bad Request\r\n"]
        lines += [name + b": " + value + b"\r\n" for name, value in self.server_state.default_headers]
        lines += [
            b"content-type: application/json\r\n",
            b"content-length: " + str(len(_ENVELOPE)).encode() + b"\r\n",
            b"connection: close\r\n",
            b"\r\n",
            bytes(_ENVELOPE),
        ]
        self.transport.write(b"".join(lines))
        self.transport.close()
