"""Bearer JWT auth: 401 without a valid token, 403 for scope or tenant problems."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from broker.api.auth import KeySet, issue_token

from .conftest import CLAIM, SUBMIT, TENANT, Api, MakeApi, assert_envelope, job

CLAIM_BODY = {"workerId": "w-1", "jobTypes": ["scan"]}


async def raw_auth(
    api: Api, authorization: str | None, path: str = SUBMIT, body: object = None
) -> tuple[int, object]:
    headers = {} if authorization is None else {"Authorization": authorization}
    return await api.post(path, body or {"jobs": [job()]}, auth=False, headers=headers)


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        "Basic dXNlcjpwYXNz",
        "Bearer",
        "Bearer ",
        "Token abc",
        "Bearer garbage",
        "Bearer a.b.c",
        "Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.",
    ],
    ids=[
        "none",
        "empty",
        "basic",
        "bearer-no-token",
        "bearer-blank",
        "token-scheme",
        "garbage",
        "three-parts",
        "alg-none",
    ],
)
async def test_missing_or_malformed_credentials(api: Api, authorization: str | None) -> None:
    before = await api.snapshot()
    status, body = await raw_auth(api, authorization)
    assert_envelope(status, body, "UNAUTHENTICATED", 401)
    assert await api.snapshot() == before


async def test_bad_signature(api: Api) -> None:
    forged = issue_token(KeySet.hs256(b"x" * 32), TENANT, "orch:operate")
    status, body = await raw_auth(api, f"Bearer {forged}")
    assert_envelope(status, body, "UNAUTHENTICATED", 401)


async def test_tampered_claims(api: Api) -> None:
    header, _, signature = api.token(scopes="orch:read").split(".")
    other_claims = api.token(scopes="orch:operate").split(".")[1]
    status, body = await raw_auth(api, f"Bearer {header}.{other_claims}.{signature}")
    assert_envelope(status, body, "UNAUTHENTICATED", 401)


async def test_expired_token(api: Api) -> None:
    expired = api.keys.sign(
        {"sub": "dev", "tenant": TENANT, "scope": "orch:operate", "exp": int(time.time()) - 60}
    )
    status, body = await raw_auth(api, f"Bearer {expired}")
    assert_envelope(status, body, "UNAUTHENTICATED", 401)


@pytest.mark.parametrize("claim", ["sub", "tenant", "project"])
@pytest.mark.parametrize("text", ["a\x00b", "a\ud800b"], ids=["nul", "lone-surrogate"])
async def test_a_claim_no_ledger_can_store_is_refused(api: Api, claim: str, text: str) -> None:
    """A NUL or an unpaired surrogate could never be written to the ledger's text
    columns (a flush holding one would fail for good): refuse the token."""
    claims = {"sub": "dev", "tenant": TENANT, "scope": "orch:operate", "exp": 4_000_000_000}
    claims[claim] = text
    status, body = await raw_auth(api, f"Bearer {api.keys.sign(claims)}")
    assert_envelope(status, body, "UNAUTHENTICATED", 401)
    with pytest.raises(ValueError, match="NUL"):
        argument = {"sub": "subject"}.get(claim, claim)
        issue_token(api.keys, **{"tenant": TENANT, "scopes": "orch:read", argument: text})


async def test_token_without_expiry(api: Api) -> None:
    forever = api.keys.sign({"sub": "dev", "tenant": TENANT, "scope": "orch:operate"})
    status, body = await raw_auth(api, f"Bearer {forever}")
    assert_envelope(status, body, "UNAUTHENTICATED", 401)


async def test_bearer_scheme_is_case_insensitive(api: Api) -> None:
    # RFC 9110 section 11.1: the authentication scheme is a case-insensitive token
    status, body = await raw_auth(api, f"bearer {api.token()}")
    assert status == 201, body


@pytest.mark.parametrize(
    "path,body,scopes",
    [
        (SUBMIT, {"jobs": [job()]}, "orch:worker"),
        (SUBMIT, {"jobs": [job()]}, "orch:read"),
        (CLAIM, CLAIM_BODY, "orch:operate"),
        (CLAIM, CLAIM_BODY, "orch:read orch:operate"),
        (SUBMIT, {"jobs": [job()]}, "orch:quota orch:backfill"),
    ],
    ids=["worker-submits", "reader-submits", "operator-claims", "reader-claims", "quota-submits"],
)
async def test_wrong_scope_is_forbidden(api: Api, path: str, body: object, scopes: str) -> None:
    await api.submit(job())
    before = await api.snapshot()
    status, reply = await api.post(path, body, scopes=scopes)
    assert_envelope(status, reply, "FORBIDDEN", 403)
    assert await api.snapshot() == before


async def test_token_without_tenant(api: Api) -> None:
    before = await api.snapshot()
    status, body = await api.post(SUBMIT, {"jobs": [job()]}, tenant=None)
    assert_envelope(status, body, "TENANT_REQUIRED", 403)
    status, body = await api.post(CLAIM, CLAIM_BODY, tenant=None)
    assert_envelope(status, body, "TENANT_REQUIRED", 403)
    assert await api.snapshot() == before


async def test_tenant_header_differing_is_refused(api: Api) -> None:
    before = await api.snapshot()
    status, body = await api.post(
        SUBMIT, {"jobs": [job()]}, headers={"X-Stella-Tenant": "tenant-b"}
    )
    assert_envelope(status, body, "FORBIDDEN", 403)
    assert await api.snapshot() == before


async def test_tenant_header_matching_is_accepted(api: Api) -> None:
    status, body = await api.post(SUBMIT, {"jobs": [job()]}, headers={"X-Stella-Tenant": TENANT})
    assert status == 201, body


async def test_eddsa_tokens_verify(make_api: MakeApi, tmp_path: Path) -> None:
    keys = KeySet.ed25519_file(tmp_path / "k.pem", create=True)
    assert keys.algorithm == "EdDSA"
    api = await make_api(keys=keys)
    jobs = await api.submit(job())
    [claimed] = await api.claim()
    assert claimed["jobId"] == jobs[0]["jobId"]


async def test_eddsa_app_refuses_hs256_tokens(make_api: MakeApi, tmp_path: Path) -> None:
    api = await make_api(keys=KeySet.ed25519_file(tmp_path / "k.pem", create=True))
    hs = issue_token(KeySet.hs256(b"k" * 32), TENANT, "orch:operate")
    status, body = await raw_auth(api, f"Bearer {hs}")
    assert_envelope(status, body, "UNAUTHENTICATED", 401)


async def test_eddsa_token_from_another_key(make_api: MakeApi, tmp_path: Path) -> None:
    api = await make_api(keys=KeySet.ed25519_file(tmp_path / "k.pem", create=True))
    stranger = KeySet.ed25519_file(tmp_path / "other.pem", create=True)
    status, body = await raw_auth(api, f"Bearer {issue_token(stranger, TENANT, 'orch:operate')}")
    assert_envelope(status, body, "UNAUTHENTICATED", 401)


@pytest.mark.parametrize(
    "value",
    [b"Bearer \xff\xfe", b"Bearer abc\xe9.def.ghi", b"Bearer " + "é".encode() + b".a.b"],
    ids=["invalid-utf8", "latin1-byte", "utf8-non-ascii"],
)
async def test_non_ascii_bearer_is_unauthenticated(api: Api, value: bytes) -> None:
    """Header bytes that are not a JWT's ASCII are a bad token (401), never a 500."""
    before = await api.snapshot()
    body = json.dumps({"jobs": [job()]}).encode()
    status, reply = await api.raw("POST", SUBMIT, {b"Authorization": value}, body)
    assert_envelope(status, reply, "UNAUTHENTICATED", 401)
    assert await api.snapshot() == before
