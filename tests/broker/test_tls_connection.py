"""A connection on a TLS listener, in-process over real sockets: the client certificate's subject
becomes the principal, and Fetch record data is read and written (the kernel's sendfile cannot
encrypt), never `loop.sendfile`."""
from __future__ import annotations

import asyncio
import ssl
import struct

import pytest

from kbroker.broker.authentication import ANONYMOUS, Channel
from kbroker.broker.connection import SMALL_FILE_PART, Connection
from kbroker.config import build_config
from kbroker.log.local_log import FetchSlices
from kbroker.log.segment import FileSlice
from kbroker.security.credentials import FileCredentialStore
from kbroker.security.tls import server_context
from tests.broker.test_connection import StubDispatcher, frame
from tests.certificates import Certificates, make_certificates
from tests.waiting import wait_until_async


@pytest.fixture(scope="module")
def certs(tmp_path_factory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("certs"))


async def serve(tmp_path, certs: Certificates, dispatcher: StubDispatcher, **settings: str):
    config = build_config({"listeners": "SSL://127.0.0.1:0", "ssl.keystore.location": str(certs.server),
                           "ssl.truststore.location": str(certs.ca), **settings})
    security = config.security["SSL"]
    channel = Channel(security, FileCredentialStore(tmp_path))
    connections: set[Connection] = set()
    server = await asyncio.get_running_loop().create_server(
        lambda: Connection(dispatcher, 1 << 20, connections, channel=channel), "127.0.0.1", 0,
        ssl=server_context(security.tls))
    return server, connections


def client_context(certs: Certificates, with_certificate: bool) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(certs.ca))
    if with_certificate:
        context.load_cert_chain(str(certs.client_cert), str(certs.client_key))
    return context


async def connected(connections: set[Connection]) -> Connection:
    await wait_until_async(lambda: connections, "the server to see the connection")
    return next(iter(connections))


@pytest.mark.parametrize("rules, with_certificate, principal", [
    ("DEFAULT", True, "User:CN=alice-client,OU=kbroker-tests,O=kbroker"),
    ("RULE:^CN=([^,]*),.*$/$1/U", True, "User:ALICE-CLIENT"),
    ("DEFAULT", False, ANONYMOUS),  # ssl.client.auth=requested: a client may come without one
])
async def test_the_certificate_subject_is_the_principal(tmp_path, certs, rules, with_certificate, principal):
    server, connections = await serve(tmp_path, certs, StubDispatcher(), **{
        "ssl.client.auth": "requested", "ssl.principal.mapping.rules": rules})
    port = server.sockets[0].getsockname()[1]
    _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client_context(certs, with_certificate))
    try:
        assert (await connected(connections)).principal == principal
    finally:
        writer.close()
        server.close()


async def test_a_certificate_no_mapping_rule_applies_to_is_refused(tmp_path, certs):
    server, connections = await serve(tmp_path, certs, StubDispatcher(), **{
        "ssl.client.auth": "required", "ssl.principal.mapping.rules": "RULE:^CN=bob,.*$/bob/"})
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client_context(certs, True))
    try:
        assert await asyncio.wait_for(reader.read(), 5) == b""  # closed by the broker
    finally:
        writer.close()
        server.close()


async def test_fetch_record_data_over_tls_is_copied_not_sendfiled(tmp_path, certs, monkeypatch):
    loop = asyncio.get_running_loop()

    async def no_sendfile(*args, **kwargs):
        raise AssertionError("loop.sendfile over TLS")

    monkeypatch.setattr(loop, "sendfile", no_sendfile)
    data = bytes(range(256)) * ((3 << 20) // 256 + 7)  # several copy chunks, not a multiple of one
    records = tmp_path / "segment.log"
    records.write_bytes(b"x" * 100 + data)
    with records.open("rb") as segment:
        part = FetchSlices((FileSlice(segment, 100, len(data)),), len(data))
        assert part.size > SMALL_FILE_PART
        answer = [struct.pack(">i", len(data) + 3) + b"hdr", part]
        server, _ = await serve(tmp_path, certs, StubDispatcher(answers={b"fetch": answer}))
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client_context(certs, False))
        try:
            writer.write(frame(b"fetch"))
            size = struct.unpack(">i", await asyncio.wait_for(reader.readexactly(4), 10))[0]
            body = await asyncio.wait_for(reader.readexactly(size), 10)
        finally:
            writer.close()
            server.close()
    assert body == b"hdr" + data
