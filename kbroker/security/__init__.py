"""Authentication: listener TLS / SASL settings, SASL mechanisms (PLAIN, SCRAM), SCRAM credentials,
principals. Pure logic and files; the broker's connections drive it (kbroker/broker/authentication.py)."""
