"""Token signing and verification, client secret hashing, key pair generation."""

from __future__ import annotations

import datetime as dt
import stat
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ec import SECP256R1, generate_private_key

from shared.auth import (
    Scope,
    TokenIssuer,
    TokenVerifier,
    generate_keypair,
    hash_secret,
    new_secret,
    verify_secret,
)
from shared.errors import UnauthorizedError

ISSUER, AUDIENCE = "lienthong-gateway", "lienthong"


@pytest.fixture
def keys(tmp_path: Path) -> tuple[bytes, bytes]:
    private, public = generate_keypair(tmp_path / "keys")
    return private.read_bytes(), public.read_bytes()


@pytest.fixture
def issuer(keys: tuple[bytes, bytes]) -> TokenIssuer:
    return TokenIssuer(keys[0], ISSUER, AUDIENCE, ttl_seconds=900)


@pytest.fixture
def verifier(keys: tuple[bytes, bytes]) -> TokenVerifier:
    return TokenVerifier(keys[1], ISSUER, AUDIENCE)


# --- tokens ----------------------------------------------------------------------------------


def test_issued_token_verifies_to_the_same_principal(issuer: TokenIssuer, verifier: TokenVerifier) -> None:
    token = issuer.issue("lt_abc", "000.00.01.H41", [Scope.SEND, Scope.RECEIVE])
    principal = verifier.verify(token)
    assert principal.client_id == "lt_abc"
    assert principal.agency_code == "000.00.01.H41"
    assert principal.scopes == frozenset({Scope.SEND, Scope.RECEIVE})
    assert Scope.SEND in principal.scopes
    assert Scope.SEARCH not in principal.scopes
    assert not principal.is_admin


def test_admin_token_acts_for_no_agency(issuer: TokenIssuer, verifier: TokenVerifier) -> None:
    principal = verifier.verify(issuer.issue("admin", None, [Scope.REGISTRY_ADMIN]))
    assert principal.agency_code is None
    assert principal.is_admin


def test_token_without_scopes_has_none(issuer: TokenIssuer, verifier: TokenVerifier) -> None:
    assert verifier.verify(issuer.issue("lt_abc", "000.00.01.H41", [])).scopes == frozenset()


def test_token_claims_carry_issuer_audience_and_lifetime(issuer: TokenIssuer, keys: tuple[bytes, bytes]) -> None:
    claims = jwt.decode(issuer.issue("lt_abc", None, ["x"]), options={"verify_signature": False})
    assert claims["iss"] == ISSUER
    assert claims["aud"] == AUDIENCE
    assert claims["exp"] - claims["iat"] == 900
    assert jwt.get_unverified_header(issuer.issue("lt_abc", None, []))["alg"] == "EdDSA"


def test_expired_token_is_refused(keys: tuple[bytes, bytes], verifier: TokenVerifier) -> None:
    expired = TokenIssuer(keys[0], ISSUER, AUDIENCE, ttl_seconds=-60).issue("lt_abc", None, [Scope.SEND])
    with pytest.raises(UnauthorizedError, match="expired"):
        verifier.verify(expired)


def test_token_within_clock_leeway_is_accepted(keys: tuple[bytes, bytes], verifier: TokenVerifier) -> None:
    just_expired = TokenIssuer(keys[0], ISSUER, AUDIENCE, ttl_seconds=-1).issue("lt_abc", None, [])
    assert verifier.verify(just_expired).client_id == "lt_abc"


def test_token_signed_by_another_key_is_refused(tmp_path: Path, verifier: TokenVerifier) -> None:
    other_private, _ = generate_keypair(tmp_path / "other")
    forged = TokenIssuer(other_private.read_bytes(), ISSUER, AUDIENCE, 900).issue("admin", None, [Scope.REGISTRY_ADMIN])
    with pytest.raises(UnauthorizedError):
        verifier.verify(forged)


def test_token_for_another_audience_is_refused(keys: tuple[bytes, bytes], verifier: TokenVerifier) -> None:
    token = TokenIssuer(keys[0], ISSUER, "another-system", 900).issue("lt_abc", None, [])
    with pytest.raises(UnauthorizedError):
        verifier.verify(token)


def test_token_from_another_issuer_is_refused(keys: tuple[bytes, bytes], verifier: TokenVerifier) -> None:
    token = TokenIssuer(keys[0], "someone-else", AUDIENCE, 900).issue("lt_abc", None, [])
    with pytest.raises(UnauthorizedError):
        verifier.verify(token)


def test_tampered_payload_is_refused(issuer: TokenIssuer, verifier: TokenVerifier) -> None:
    header, _payload, signature = issuer.issue("lt_abc", "000.00.01.H41", [Scope.RECEIVE]).split(".")
    forged_claims = jwt.encode(
        {"sub": "lt_abc", "iss": ISSUER, "aud": AUDIENCE, "scope": Scope.REGISTRY_ADMIN, "iat": 0, "exp": 2**40},
        "k" * 32,
        algorithm="HS256",
    ).split(".")[1]
    with pytest.raises(UnauthorizedError):
        verifier.verify(f"{header}.{forged_claims}.{signature}")


def test_unsigned_token_is_refused(verifier: TokenVerifier) -> None:
    now = dt.datetime.now(dt.UTC)
    claims = {"sub": "admin", "iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + dt.timedelta(minutes=5)}
    unsigned = jwt.encode(claims, None, algorithm="none")  # type: ignore[arg-type]
    with pytest.raises(UnauthorizedError):
        verifier.verify(unsigned)


def test_token_missing_a_required_claim_is_refused(keys: tuple[bytes, bytes], verifier: TokenVerifier) -> None:
    private = serialization.load_pem_private_key(keys[0], password=None)
    now = dt.datetime.now(dt.UTC)
    no_subject = {"iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + dt.timedelta(minutes=5)}
    with pytest.raises(UnauthorizedError):
        verifier.verify(jwt.encode(no_subject, private, algorithm="EdDSA"))  # type: ignore[arg-type]


@pytest.mark.parametrize("garbage", ["", "not-a-jwt", "a.b.c"])
def test_garbage_is_refused(verifier: TokenVerifier, garbage: str) -> None:
    with pytest.raises(UnauthorizedError):
        verifier.verify(garbage)


def test_keys_other_than_ed25519_are_refused() -> None:
    ec_key = generate_private_key(SECP256R1())
    private_pem = ec_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public_pem = ec_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with pytest.raises(ValueError, match="Ed25519"):
        TokenIssuer(private_pem, ISSUER, AUDIENCE, 900)
    with pytest.raises(ValueError, match="Ed25519"):
        TokenVerifier(public_pem, ISSUER, AUDIENCE)


# --- client secrets --------------------------------------------------------------------------


def test_secret_hash_verifies_the_right_secret_only() -> None:
    secret = new_secret()
    secret_hash = hash_secret(secret)
    assert secret_hash.startswith("$argon2id$")
    assert secret not in secret_hash
    assert verify_secret(secret_hash, secret) is True
    assert verify_secret(secret_hash, secret + "x") is False
    assert verify_secret(secret_hash, "") is False


def test_same_secret_hashes_differently_each_time() -> None:
    assert hash_secret("same") != hash_secret("same")


@pytest.mark.parametrize(
    "malformed",
    [
        "",
        "not-a-hash",
        "$2b$12$abcdefghijklmnopqrstuuABCDEFGHIJKLMNOPQRSTUVWXYZ012",
        "$argon2id$v=19$m=65536,t=3,p=4$xx$yy",
    ],
)
def test_malformed_hash_never_matches(malformed: str) -> None:
    assert verify_secret(malformed, "anything") is False


def test_non_ascii_malformed_hash_never_matches() -> None:
    assert verify_secret("$argon2id$ä", "anything") is False


def test_new_secrets_are_long_and_distinct() -> None:
    secrets = {new_secret() for _ in range(20)}
    assert len(secrets) == 20
    assert all(len(s) >= 43 for s in secrets)


# --- key pair --------------------------------------------------------------------------------


def test_generate_keypair_writes_a_matching_pair_with_a_private_private_key(tmp_path: Path) -> None:
    private, public = generate_keypair(tmp_path / "keys")
    assert private == tmp_path / "keys" / "jwt-private.pem"
    assert public == tmp_path / "keys" / "jwt-public.pem"
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    token = TokenIssuer(private.read_bytes(), ISSUER, AUDIENCE, 60).issue("lt_abc", None, [])
    assert TokenVerifier(public.read_bytes(), ISSUER, AUDIENCE).verify(token).client_id == "lt_abc"


def test_generate_keypair_keeps_an_existing_pair(tmp_path: Path) -> None:
    private, public = generate_keypair(tmp_path)
    before = (private.read_bytes(), public.read_bytes())
    again = generate_keypair(tmp_path)
    assert again == (private, public)
    assert (private.read_bytes(), public.read_bytes()) == before
