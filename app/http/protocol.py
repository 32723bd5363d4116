"""uvicorn's h11 protocol, answering a request whose body never comes.

A client that announces a ``Content-Length`` and then half-closes its side before sending that
many bytes can still read: it should get a 400 and see the connection closed. uvicorn's h11
protocol ignores the end of the client's stream, so the transport closed with the request
unanswered. Here, when the client's side ends in the middle of a request body and no answer has
started, the request's cycle is marked disconnected (the app's ``receive`` gets
``http.disconnect`` and whatever it answers is dropped), a 400 in the API's error shape is
written, and the connection is closed once it is flushed.
"""
from __future__ import annotations

import json

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

_BODY = json.dumps({"error": {
    "code": "malformed_request",
    "message": "The client closed its side of the connection before sending the body its Content-Length "
               "announced.",
    "details": {}}}).encode()


class H11HalfCloseProtocol(H11Protocol):
    def eof_received(self) -> None:
        cycle = self.cycle
        if (cycle is not None and not cycle.response_started and not cycle.response_complete
                and self.conn.their_state == h11.SEND_BODY):
            cycle.disconnected = True  # the app stops waiting for the body; its own answer is dropped
            cycle.message_event.set()
            try:
                headers = [(b"content-type", b"application/json"), (b"content-length", str(len(_BODY)).encode()),
                           (b"connection", b"close")]
                for event in (h11.Response(status_code=400, headers=headers, reason=b"Bad Request"),
                              h11.Data(data=_BODY), h11.EndOfMessage()):
                    self.transport.write(self.conn.send(event))
            except h11.LocalProtocolError:  # h11 would not have it in this state: just close
                pass
            self.transport.close()
        return None  # asyncio then closes the transport, after what was written is flushed
