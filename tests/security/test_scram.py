"""SCRAM-SHA-256 against RFC 7677's test vector, and the ways an exchange fails."""
import base64

import pytest

from kbroker.security.mechanism import AuthenticationFailed
from kbroker.security.scram import ScramClient, ScramServer, credential_from_salted, make_credential, salted_password

# RFC 7677 section 3: user "user", password "pencil".
SALT = base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ==")
CLIENT_FIRST = b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
SERVER_NONCE = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
SERVER_FIRST = b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
CLIENT_FINAL = (b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
                b"p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
SERVER_FINAL = b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="


def server(password: str = "pencil", user: str = "user") -> ScramServer:
    credential = make_credential("SCRAM-SHA-256", password, 4096, SALT)
    return ScramServer("SCRAM-SHA-256", lambda name, mechanism: credential if name == user else None,
                       nonce=lambda: SERVER_NONCE)


def test_rfc7677_exchange():
    scram = server()
    assert scram.evaluate(CLIENT_FIRST) == SERVER_FIRST
    assert not scram.complete
    assert scram.evaluate(CLIENT_FINAL) == SERVER_FINAL
    assert scram.complete and scram.username == "user"


def test_the_stored_credential_holds_no_password():
    credential = make_credential("SCRAM-SHA-512", "pencil", 4096, SALT)
    assert b"pencil" not in credential.stored_key + credential.server_key
    assert credential == credential_from_salted("SCRAM-SHA-512", salted_password("SCRAM-SHA-512", "pencil", SALT, 4096),
                                                SALT, 4096)


@pytest.mark.parametrize("final, message", [
    (CLIENT_FINAL.replace(b"p=dHzb", b"p=eHzb"), "Invalid user credentials"),  # a wrong proof
    (CLIENT_FINAL.replace(b"r=rOpr", b"r=xOpr"), "nonce mismatch"),
    (CLIENT_FINAL.replace(b"c=biws", b"c=eSws"), "channel binding"),
    (b"garbage", "nonce mismatch"),
    (b"\xff\xfe", "not UTF-8"),
])
def test_bad_client_final_messages(final, message):
    scram = server()
    scram.evaluate(CLIENT_FIRST)
    with pytest.raises(AuthenticationFailed, match=message):
        scram.evaluate(final)
    assert not scram.complete


def test_wrong_password_fails():
    scram = server(password="other")
    scram.evaluate(CLIENT_FIRST)
    with pytest.raises(AuthenticationFailed, match="Invalid user credentials"):
        scram.evaluate(CLIENT_FINAL)


@pytest.mark.parametrize("first", [b"n,,n=nobody,r=abc", b"p=tls-unique,,n=user,r=abc", b"n,,r=abc", b"",
                                   b"n,a=other,n=user,r=abc"])
def test_bad_client_first_messages(first):
    with pytest.raises(AuthenticationFailed):
        server().evaluate(first)


def test_the_client_side_of_rfc7677():
    client = ScramClient("SCRAM-SHA-256", "user", "pencil", nonce=lambda: "rOprNGfwEbeRWgbNEkqO")
    assert client.start() == CLIENT_FIRST
    assert client.evaluate(SERVER_FIRST) == CLIENT_FINAL
    assert not client.complete
    assert client.evaluate(SERVER_FINAL) is None and client.complete


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "SCRAM-SHA-512"])
@pytest.mark.parametrize("user", ["broker-1", "odd,name=x"])  # ',' and '=' travel escaped
def test_the_client_logs_in_to_our_server(mechanism, user):
    credential = make_credential(mechanism, "b-secret", 4096)
    scram = ScramServer(mechanism, lambda name, _: credential if name == user else None)
    client = ScramClient(mechanism, user, "b-secret")
    token = client.start()
    while token is not None:
        token = client.evaluate(scram.evaluate(token))
    assert client.complete and scram.complete and scram.username == user


def test_a_wrong_client_password_is_refused_by_the_server():
    credential = make_credential("SCRAM-SHA-512", "b-secret", 4096)
    scram = ScramServer("SCRAM-SHA-512", lambda name, _: credential)
    client = ScramClient("SCRAM-SHA-512", "broker", "wrong")
    final = client.evaluate(scram.evaluate(client.start()))
    with pytest.raises(AuthenticationFailed, match="Invalid user credentials"):
        scram.evaluate(final)


def test_the_client_refuses_a_server_without_the_credential():
    """A server that does not hold the user's keys cannot produce the server signature."""
    client = ScramClient("SCRAM-SHA-256", "user", "pencil", nonce=lambda: "rOprNGfwEbeRWgbNEkqO")
    client.evaluate(SERVER_FIRST)
    with pytest.raises(AuthenticationFailed, match="server signature does not match"):
        client.evaluate(b"v=" + base64.b64encode(b"\0" * 32))
    assert not client.complete


@pytest.mark.parametrize("server_first, message", [
    (SERVER_FIRST.replace(b"r=rOpr", b"r=xOpr"), "nonce mismatch"),  # not our nonce
    (b"r=rOprNGfwEbeRWgbNEkqO,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096", "nonce mismatch"),  # no server part
    (SERVER_FIRST.replace(b"i=4096", b"i=1024"), "less than the minimum"),
    (SERVER_FIRST.replace(b"s=W22Z", b"s=!!"), "salt or iterations"),
    (b"e=other-error", "SCRAM server error: other-error"),
    (b"garbage", "Invalid SCRAM message"),
])
def test_bad_server_first_messages(server_first, message):
    client = ScramClient("SCRAM-SHA-256", "user", "pencil", nonce=lambda: "rOprNGfwEbeRWgbNEkqO")
    client.start()
    with pytest.raises(AuthenticationFailed, match=message):
        client.evaluate(server_first)
