"""Key rotation without downtime: ``lienthong keys rotate`` makes a new key the signer while the
gateway and the services run; tokens signed before still verify until the previous key is retired;
the JWKS lists what verifies; services sign their own calls with the new key; a service that does not
see the ring file learns the new key from the gateway's JWKS."""

from __future__ import annotations

import shutil
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import jwt
import pytest
from typer.testing import CliRunner

import shared.keyring
from services.cli import app as cli
from shared.auth import TokenVerifier
from shared.keyring import KeyFiles, KeyRing, RingEntry, load_public_key, read_ring, thumbprint, write_ring
from tests.conftest import running_system
from tests.helpers import Api, Client, assert_problem, wait_until


@pytest.fixture(scope="module")
async def api(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Api]:
    """One system on SQLite for the module; the processes look at their key files every 50 ms
    (production: every second) so that the tests wait less."""
    patch = pytest.MonkeyPatch()
    patch.setattr(shared.keyring, "FILE_CHECK_SECONDS", 0.05)
    try:
        # the tests' cheap secret hashing (make_settings) kept, the ring read at once on an unknown kid
        auth = {"secret_hash_time_cost": 1, "secret_hash_memory_kib": 1024, "key_reload_seconds": 0}
        async with running_system(tmp_path_factory.mktemp("keys") / "var", auth=auth) as caller:
            yield caller
    finally:
        patch.undo()


def keys_dir(api: Api) -> Path:
    return api.settings.private_key_file.parent


def keys(api: Api, *args: str) -> str:
    result = CliRunner().invoke(cli, ["keys", *args, "--dir", str(keys_dir(api))])
    assert result.exit_code == 0, result.output
    return result.output


def current_kid(api: Api) -> str:
    return thumbprint(load_public_key(api.settings.public_key_file.read_bytes()))


def kid_of(token: str) -> str:
    return str(jwt.get_unverified_header(token)["kid"])


async def accepted(api: Api, token: str) -> bool:
    response = await api.http.get("/v1/documents", params={"box": "sent"}, headers={"Authorization": f"Bearer {token}"})
    if response.status_code == 401:
        return False
    assert response.status_code == 200, response.text
    return True


async def new_token(api: Api, client: Client) -> str:
    response = await api.token(client.client_id, client.client_secret)
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


async def jwks_kids(api: Api) -> dict[str, int | None]:
    response = await api.http.get("/.well-known/jwks.json")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    for key in response.json()["keys"]:
        assert (key["kty"], key["crv"], key["alg"], key["use"]) == ("OKP", "Ed25519", "EdDSA", "sig")
        assert "d" not in key
    return {key["kid"]: key.get("exp") for key in response.json()["keys"]}


async def test_rotation_keeps_old_tokens_until_the_previous_key_is_retired(api: Api) -> None:
    client = await api.agency_client()
    old_kid = current_kid(api)
    old_token = client.token
    assert kid_of(old_token) == old_kid
    assert await jwks_kids(api) == {old_kid: None}
    exchange = api.service_runtime("exchange")
    registry_verifier = api.service_runtime("registry").token_verifier

    keys(api, "rotate")
    new_kid = current_kid(api)
    assert new_kid != old_kid
    # the gateway signs with the new key without a restart; the old token still verifies
    assert kid_of(await new_token(api, client)) == new_kid  # the gateway signs with it at once
    assert await accepted(api, old_token)
    assert await accepted(api, await new_token(api, client))
    listed = await jwks_kids(api)
    assert set(listed) == {old_kid, new_kid}
    assert listed[new_kid] is None and listed[old_kid] is not None
    # the previous key verifies until the last token it signed has expired (+ a minute of skew)
    assert listed[old_kid] >= time.time() + api.settings.gateway.token_ttl_seconds
    # a service signs its own calls with the new key, and the others accept them
    internal = exchange.internal_authorization().removeprefix("Bearer ")
    assert kid_of(internal) == new_kid
    assert registry_verifier.verify(internal).client_id == "exchange"

    # time passes: the previous key's last token has expired, the key is retired
    ring = KeyFiles.in_directory(keys_dir(api)).ring
    write_ring(ring, [RingEntry(e.key, e.status, time.time() - 1) for e in read_ring(ring)])
    await wait_until(lambda: _refused(api, old_token), within=5, what="the retired key's token to be refused")
    response = await api.http.get("/v1/documents", headers={"Authorization": f"Bearer {old_token}"})
    assert "does not know" in assert_problem(response, 401, "unauthorized")["detail"]
    assert await jwks_kids(api) == {new_kid: None}
    assert old_kid in keys(api, "prune")
    assert read_ring(ring) == []
    assert await accepted(api, await new_token(api, client))


async def test_staged_key_verifies_before_it_signs_and_a_leaked_key_is_retired_at_once(api: Api) -> None:
    api._admin = None  # the admin token of an earlier test may be signed by a retired key
    client = await api.agency_client()
    before = current_kid(api)
    token_before = await new_token(api, client)
    keys(api, "stage")
    staged = next(e.kid for e in read_ring(KeyFiles.in_directory(keys_dir(api)).ring) if e.status == "next")
    await wait_until(lambda: _listed(api, staged), within=5, what="the staged key in the JWKS")
    assert kid_of(await new_token(api, client)) == before  # staged: it does not sign yet

    keys(api, "rotate", "--retire-previous")
    assert current_kid(api) == staged
    assert kid_of(await new_token(api, client)) == staged  # signers look at their key file at every signature
    # the leaked key verifies nothing any more, once the verifiers looked at their files
    await wait_until(lambda: _refused(api, token_before), within=5, what="the leaked key's token to be refused")
    assert set(await jwks_kids(api)) == {staged}


async def test_a_service_without_the_ring_file_learns_new_keys_from_the_gateways_jwks(api: Api, tmp_path: Path) -> None:
    """A Kubernetes pod that mounts jwt-public.pem only: an unknown kid fetches the gateway's JWKS."""
    api._admin = None  # the admin token of an earlier test may be signed by a retired key
    client = await api.agency_client()
    mounted = tmp_path / "jwt-public.pem"
    shutil.copy(api.settings.public_key_file, mounted)  # the old public key, never updated here

    async def fetch() -> dict[str, object]:
        response = await api.http.get("/.well-known/jwks.json")
        response.raise_for_status()
        document: dict[str, object] = response.json()
        return document

    ring = KeyRing.from_files(mounted, tmp_path / "jwt-keyring.json", fetch=fetch, reload_seconds=0)
    verifier = TokenVerifier(None, api.settings.auth.issuer, api.settings.auth.audience, ring=ring)
    assert (await verifier.verify_async(client.token)).client_id == client.client_id
    keys(api, "rotate")
    new_kid = current_kid(api)
    fresh = await new_token(api, client)
    assert kid_of(fresh) == new_kid
    assert (await verifier.verify_async(fresh)).client_id == client.client_id  # fetched
    assert (await verifier.verify_async(client.token)).client_id == client.client_id  # the old key still verifies
    with pytest.raises(Exception, match="does not know"):
        await verifier.verify_async(fresh.replace(fresh.split(".")[0], _header_with_kid("made-up")))


def _header_with_kid(kid: str) -> str:
    import base64
    import json

    header = {"alg": "EdDSA", "typ": "JWT", "kid": kid}
    return base64.urlsafe_b64encode(json.dumps(header).encode()).rstrip(b"=").decode()


async def _refused(api: Api, token: str) -> bool:
    return not await accepted(api, token)


async def _listed(api: Api, kid: str) -> bool:
    return kid in await jwks_kids(api)


async def test_jwks_needs_no_token_and_is_cacheable(api: Api) -> None:
    async with httpx.AsyncClient(transport=api.http._transport, base_url="http://gateway") as anonymous:
        response = await anonymous.get("/.well-known/jwks.json")
    assert response.status_code == 200
    assert "max-age" in response.headers["cache-control"]
    assert current_kid(api) in {key["kid"] for key in response.json()["keys"]}


def test_keys_commands_without_a_system(tmp_path: Path) -> None:
    """list, rotate and prune on a directory of keys; rotating nothing is a clear error."""
    runner = CliRunner()
    missing = runner.invoke(cli, ["keys", "rotate", "--dir", str(tmp_path / "none")])
    assert missing.exit_code == 1
    assert "keys generate" in missing.output
    directory = str(tmp_path / "keys")
    assert runner.invoke(cli, ["keys", "generate", "--dir", directory]).exit_code == 0
    first = thumbprint(load_public_key((tmp_path / "keys" / "jwt-public.pem").read_bytes()))
    assert runner.invoke(cli, ["keys", "rotate", "--dir", directory, "--overlap", "600"]).exit_code == 0
    listed = runner.invoke(cli, ["keys", "list", "--dir", directory]).output
    assert f'"kid": "{first}", "status": "previous"' in listed
    assert (tmp_path / "keys" / "jwt-private.pem").stat().st_mode & 0o777 == 0o600
    second = thumbprint(load_public_key((tmp_path / "keys" / "jwt-public.pem").read_bytes()))
    assert runner.invoke(cli, ["keys", "rotate", "--dir", directory, "--overlap", "0"]).exit_code == 0
    pruned = runner.invoke(cli, ["keys", "prune", "--dir", directory]).output
    assert second in pruned  # retired at once (overlap 0)
    assert first not in pruned  # still within its 600 s
    assert '"status": "retired"' not in runner.invoke(cli, ["keys", "list", "--dir", directory]).output
