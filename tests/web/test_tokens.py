"""State and session JWTs: signature, algorithm pinning, expiry, PKCE."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from vsb.secret import Secret
from vsb.services.auth import TokenError, TokenSigner, pkce_challenge

KEY = "k" * 40


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def signer(clock: Clock) -> TokenSigner:
    return TokenSigner(Secret(KEY), clock=clock)


def _b64(data: dict[str, object]) -> str:
    raw = json.dumps(data).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def test_state_round_trip(signer: TokenSigner) -> None:
    token, issued = signer.issue_state(user_id=2**63 + 5, guild_id=42)
    claims = signer.decode_state(token)
    assert claims == issued
    assert claims.user_id == 2**63 + 5 and claims.guild_id == 42
    assert claims.expires_at - signer.now() == pytest.approx(600)


def test_state_nonces_differ(signer: TokenSigner) -> None:
    first = signer.issue_state(user_id=1, guild_id=2)[1].nonce
    second = signer.issue_state(user_id=1, guild_id=2)[1].nonce
    assert first != second


def test_session_round_trip(signer: TokenSigner) -> None:
    token = signer.issue_session(user_id=7, login="alice")
    claims = signer.decode_session(token)
    assert (claims.user_id, claims.login) == (7, "alice")
    assert claims.expires_at - signer.now() == pytest.approx(86_400)


def test_tampered_payload_is_refused(signer: TokenSigner) -> None:
    token = signer.issue_session(user_id=7, login="alice")
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["sub"] = "8"
    forged = ".".join((header, _b64(claims), signature))
    with pytest.raises(TokenError) as info:
        signer.decode_session(forged)
    assert info.value.reason == "invalid"


def test_other_key_is_refused(signer: TokenSigner, clock: Clock) -> None:
    other = TokenSigner(Secret("x" * 40), clock=clock)
    with pytest.raises(TokenError):
        signer.decode_session(other.issue_session(user_id=7, login="a"))


def test_alg_none_is_refused(signer: TokenSigner, clock: Clock) -> None:
    payload = {
        "sub": "7",
        "login": "a",
        "iss": "vsb",
        "aud": "vsb:session",
        "iat": int(clock.now),
        "exp": int(clock.now) + 60,
    }
    unsigned = f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(payload)}."
    with pytest.raises(TokenError):
        signer.decode_session(unsigned)


def test_rs256_and_key_confusion_are_refused(signer: TokenSigner, clock: Clock) -> None:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    payload = {
        "sub": "7",
        "login": "a",
        "iss": "vsb",
        "aud": "vsb:session",
        "iat": int(clock.now),
        "exp": int(clock.now) + 60,
    }
    rs = jwt.encode(payload, private, algorithm="RS256")
    with pytest.raises(TokenError):
        signer.decode_session(rs)
    # RS/HS confusion: an HS256 token keyed with a public key must not pass.
    header = _b64({"alg": "HS256", "typ": "JWT"})
    signing_input = f"{header}.{_b64(payload)}".encode()
    mac = hmac.new(public_pem, signing_input, hashlib.sha256).digest()
    confused = (
        signing_input.decode()
        + "."
        + base64.urlsafe_b64encode(mac).rstrip(b"=").decode()
    )
    with pytest.raises(TokenError):
        signer.decode_session(confused)


def test_expired_state(signer: TokenSigner, clock: Clock) -> None:
    token, _ = signer.issue_state(user_id=1, guild_id=2)
    clock.now += 599
    signer.decode_state(token)
    clock.now += 1
    with pytest.raises(TokenError) as info:
        signer.decode_state(token)
    assert info.value.reason == "expired"


def test_expired_session(signer: TokenSigner, clock: Clock) -> None:
    token = signer.issue_session(user_id=1, login="a")
    clock.now += 86_400
    with pytest.raises(TokenError) as info:
        signer.decode_session(token)
    assert info.value.reason == "expired"


def test_issued_in_the_future_is_refused(signer: TokenSigner, clock: Clock) -> None:
    later = TokenSigner(Secret(KEY), clock=lambda: clock.now + 3600)
    token = later.issue_session(user_id=1, login="a")
    with pytest.raises(TokenError) as info:
        signer.decode_session(token)
    assert info.value.reason == "not_yet_valid"


def test_missing_claims_are_refused(signer: TokenSigner, clock: Clock) -> None:
    payload = {"sub": "7", "login": "a", "iss": "vsb", "aud": "vsb:session"}
    token = jwt.encode(payload, KEY, algorithm="HS256")
    with pytest.raises(TokenError):
        signer.decode_session(token)


def test_state_is_not_a_session(signer: TokenSigner) -> None:
    state, _ = signer.issue_state(user_id=1, guild_id=2)
    with pytest.raises(TokenError):
        signer.decode_session(state)
    with pytest.raises(TokenError):
        signer.decode_state(signer.issue_session(user_id=1, login="a"))


def test_pkce_challenge_matches_rfc_7636_appendix_b() -> None:
    verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
    assert pkce_challenge(verifier) == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


def test_pkce_verifier_is_per_nonce_and_keyed(
    signer: TokenSigner, clock: Clock
) -> None:
    verifier = signer.pkce_verifier("n1")
    assert 43 <= len(verifier) <= 128
    assert verifier == signer.pkce_verifier("n1")
    assert verifier != signer.pkce_verifier("n2")
    assert verifier != TokenSigner(Secret("y" * 40), clock=clock).pkce_verifier("n1")
