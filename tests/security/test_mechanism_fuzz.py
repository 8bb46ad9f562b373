"""Whatever a client sends, a mechanism answers or raises AuthenticationFailed: never anything else."""
from hypothesis import given, settings
from hypothesis import strategies as st

from kbroker.security.mechanism import AuthenticationFailed
from kbroker.security.plain import PlainServer
from kbroker.security.scram import ScramServer, make_credential

CREDENTIAL = make_credential("SCRAM-SHA-256", "pencil", 4096, b"salt")
tokens = st.one_of(st.binary(max_size=200),
                   st.builds(lambda a, b: f"n,,n={a},r={b}".encode(), st.text(max_size=20), st.text(max_size=20)),
                   st.builds(lambda a, b: f"c=biws,r={a},p={b}".encode(), st.text(max_size=40), st.text(max_size=60)))


@settings(max_examples=300, deadline=None)
@given(st.lists(tokens, min_size=1, max_size=3))
def test_scram_survives_any_messages(messages):
    server = ScramServer("SCRAM-SHA-256", lambda user, mechanism: CREDENTIAL, nonce=lambda: "n0nce")
    for message in messages:
        try:
            server.evaluate(message)
        except AuthenticationFailed:
            return


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=100))
def test_plain_survives_any_message(token):
    try:
        PlainServer({"alice": "secret"}).evaluate(token)
    except AuthenticationFailed:
        pass
