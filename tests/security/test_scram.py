"""SCRAM-SHA-256 against RFC 7677's test vector, and the ways an exchange fails."""
import base64

import pytest

from kbroker.security.mechanism import AuthenticationFailed
from kbroker.security.scram import ScramServer, credential_from_salted, make_credential, salted_password

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
