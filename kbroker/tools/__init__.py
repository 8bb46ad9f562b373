"""The admin CLI: `kbroker topics|groups|produce|consume|cluster|dump-log`, for kbroker or any Kafka broker.

The wire side is our own codec (`kbroker.wire`), not kafka-python: every API the tools send is
already declared there, so there is no second protocol implementation to keep in step, no
runtime dependency beyond what the broker needs, and a command starts in about 0.2 s
(kafka-python's import and its version probing take longer and, against an unknown broker,
guess). Versions are negotiated the way Kafka's clients do it: ApiVersions v0 first (every
broker answers it), then per API the highest version both sides speak within the range whose
request shape this package builds (`client.VERSIONS`).

One module per command group; `client` is the small synchronous wire client they share,
`output` renders tables (rich) or JSON and maps failures to exit codes.
"""
