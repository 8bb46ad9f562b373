"""DescribeUserScramCredentials and AlterUserScramCredentials: the SCRAM users admin clients
manage (kafka-configs --alter --add-config 'SCRAM-SHA-256=[password=...]', AdminClient).

The client salts the password itself (AlterUserScramCredentials carries PBKDF2's output); we keep
StoredKey and ServerKey (kbroker/security/scram.py). Checks and messages are Kafka's. Without an
authorizer (no ACLs yet) any client may call them, as in Kafka.
"""
from __future__ import annotations

from collections import Counter

from kbroker.broker import authorization
from kbroker.broker.dispatch import RequestContext
from kbroker.errors import ErrorCode
from kbroker.security.acls import Operation
from kbroker.security.scram import MAX_ITERATIONS, MIN_ITERATIONS, credential_from_salted
from kbroker.wire.messages.alter_user_scram_credentials import (
    AlterUserScramCredentialsRequest,
    AlterUserScramCredentialsResponse,
    AlterUserScramCredentialsResult,
    ScramCredentialUpsertion,
)
from kbroker.wire.messages.describe_user_scram_credentials import (
    CredentialInfo,
    DescribeUserScramCredentialsRequest,
    DescribeUserScramCredentialsResponse,
    DescribeUserScramCredentialsResult,
)

MECHANISMS = {1: "SCRAM-SHA-256", 2: "SCRAM-SHA-512"}  # Kafka's ScramMechanism type ids
MECHANISM_IDS = {name: key for key, name in MECHANISMS.items()}


def handle_describe_user_scram_credentials(ctx: RequestContext, request: DescribeUserScramCredentialsRequest
                                           ) -> DescribeUserScramCredentialsResponse:
    if not authorization.on_cluster(ctx, Operation.DESCRIBE):
        return DescribeUserScramCredentialsResponse(error_code=ErrorCode.CLUSTER_AUTHORIZATION_FAILED,
                                                    error_message=None, results=[])
    stored = ctx.broker.credentials.describe()
    wanted = [user.name for user in request.users or ()]
    twice = {name for name, count in Counter(wanted).items() if count > 1}
    results = []
    for name in list(dict.fromkeys(wanted)) if wanted else sorted(stored):
        if name in twice:
            results.append(DescribeUserScramCredentialsResult(
                user=name, error_code=ErrorCode.DUPLICATE_RESOURCE,
                error_message=f"Cannot describe SCRAM credentials for the same user twice in a single request: {name}"))
        elif name not in stored:
            results.append(DescribeUserScramCredentialsResult(
                user=name, error_code=ErrorCode.RESOURCE_NOT_FOUND,
                error_message=f"Attempt to describe a user credential that does not exist: {name}"))
        else:
            results.append(DescribeUserScramCredentialsResult(user=name, error_code=0, credential_infos=[
                CredentialInfo(mechanism=MECHANISM_IDS[mechanism], iterations=credential.iterations)
                for mechanism, credential in sorted(stored[name].items())]))
    return DescribeUserScramCredentialsResponse(error_code=0, results=results)


async def handle_alter_user_scram_credentials(ctx: RequestContext, request: AlterUserScramCredentialsRequest
                                              ) -> AlterUserScramCredentialsResponse:
    if not authorization.on_cluster(ctx, Operation.ALTER):
        names = dict.fromkeys(item.name for item in (*request.deletions, *request.upsertions))
        return AlterUserScramCredentialsResponse(results=[
            AlterUserScramCredentialsResult(user=name, error_code=ErrorCode.CLUSTER_AUTHORIZATION_FAILED)
            for name in names])
    store = ctx.broker.credentials
    users = Counter(item.name for item in (*request.deletions, *request.upsertions))
    errors: dict[str, tuple[ErrorCode, str]] = {}
    for name, count in users.items():
        if not name:
            errors[name] = (ErrorCode.UNACCEPTABLE_CREDENTIAL, "Username must not be empty")
        elif count > 1:
            errors[name] = (ErrorCode.DUPLICATE_RESOURCE,
                            "A user credential cannot be altered twice in the same request")
    for deletion in (item for item in request.deletions if item.name not in errors):
        mechanism = MECHANISMS.get(deletion.mechanism)
        if mechanism is None:
            errors[deletion.name] = (ErrorCode.UNSUPPORTED_SASL_MECHANISM, "Unknown SCRAM mechanism")
        elif not await store.alter(deletion.name, mechanism, None):
            errors[deletion.name] = (ErrorCode.RESOURCE_NOT_FOUND,
                                     "Attempt to delete a user credential that does not exist")
    for upsertion in (item for item in request.upsertions if item.name not in errors):
        problem = _refused(upsertion)
        if problem is not None:
            errors[upsertion.name] = problem
            continue
        mechanism = MECHANISMS[upsertion.mechanism]
        await store.alter(upsertion.name, mechanism, credential_from_salted(
            mechanism, bytes(upsertion.salted_password), bytes(upsertion.salt), upsertion.iterations))
    return AlterUserScramCredentialsResponse(results=[
        AlterUserScramCredentialsResult(user=name, error_code=errors[name][0] if name in errors else 0,
                                        error_message=errors[name][1] if name in errors else None)
        for name in users])


def _refused(upsertion: ScramCredentialUpsertion) -> tuple[ErrorCode, str] | None:
    """Kafka's checks of a credential to add: a known mechanism, 4096-16384 iterations, a salt."""
    if upsertion.mechanism not in MECHANISMS:
        return ErrorCode.UNSUPPORTED_SASL_MECHANISM, "Unknown SCRAM mechanism"
    if upsertion.iterations < MIN_ITERATIONS:
        return ErrorCode.UNACCEPTABLE_CREDENTIAL, "Too few iterations"
    if upsertion.iterations > MAX_ITERATIONS:
        return ErrorCode.UNACCEPTABLE_CREDENTIAL, "Too many iterations"
    if not upsertion.salt or not upsertion.salted_password:
        return ErrorCode.UNACCEPTABLE_CREDENTIAL, "Salt and salted password must not be empty"
    return None
