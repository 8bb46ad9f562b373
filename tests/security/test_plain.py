"""SASL PLAIN messages and the JAAS option line that lists the users."""
import pytest

from kbroker.security.mechanism import AuthenticationFailed
from kbroker.security.plain import PlainClient, PlainServer, parse_jaas_options, parse_jaas_users, parse_plain_token


def test_jaas_users():
    text = ('org.apache.kafka.common.security.plain.PlainLoginModule required\n'
            '  username="admin" password="admin-secret"\n'
            '  user_admin="admin-secret" user_alice="s3cr=t;\\"x" user_bob=plain;')
    assert parse_jaas_users(text) == {"admin": "admin-secret", "alice": 's3cr=t;"x', "bob": "plain"}


@pytest.mark.parametrize("text", ["", "required user_a=\"b\";", "org.Foo required user_a=\"unterminated;"])
def test_bad_jaas_lines_are_config_errors(text):
    with pytest.raises(ValueError, match="sasl.jaas.config"):
        parse_jaas_users(text)


def test_plain_tokens():
    assert parse_plain_token(b"\0alice\0secret") == ("", "alice", "secret")
    assert parse_plain_token(b"alice\0alice\0secret") == ("alice", "alice", "secret")
    for bad in (b"alice\0secret", b"\0\0secret", b"\0alice\0", b"\0al\xffice\0x", b"\0a\0b\0c"):
        with pytest.raises(ValueError):
            parse_plain_token(bad)


def test_plain_server():
    users = {"alice": "secret"}
    server = PlainServer(users)
    assert server.evaluate(b"\0alice\0secret") == b"" and server.complete and server.username == "alice"
    for token, message in ((b"\0alice\0wrong", "Invalid username or password"),
                           (b"\0nobody\0secret", "Invalid username or password"),
                           (b"bob\0alice\0secret", "authorization id"),
                           (b"garbage", "Invalid SASL/PLAIN response")):
        with pytest.raises(AuthenticationFailed, match=message):
            PlainServer(users).evaluate(token)


def test_the_plain_client_logs_in_to_the_plain_server():
    server = PlainServer({"broker": "b-secret"})
    client = PlainClient("broker", "b-secret")
    assert client.evaluate(server.evaluate(client.start())) is None
    assert client.complete and server.username == "broker"
    with pytest.raises(AuthenticationFailed, match="Invalid username or password"):
        PlainServer({"broker": "b-secret"}).evaluate(PlainClient("broker", "wrong").start())


def test_jaas_options_hold_the_brokers_own_login():
    options = parse_jaas_options('x.ScramLoginModule required username="b1" password="p w\\"d";')
    assert options == {"username": "b1", "password": 'p w"d'}
