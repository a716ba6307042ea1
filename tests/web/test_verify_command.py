"""/verify through the commands framework's Responder and the sandbox's
interaction callback, with the real database store."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import msgspec
import pytest
import trio

from vsb.commands.registry import CommandRegistry
from vsb.commands.service import CommandService
from vsb.commands.verify import verify_commands
from vsb.db import settings, users
from vsb.models import Interaction, decode_event
from vsb.rest import RestClient
from vsb.sandbox import Sandbox, open_sandbox
from vsb.secret import Secret
from vsb.services.auth import (
    DatabaseAuthStore,
    OAuthClient,
    OAuthConfig,
    TokenSigner,
    VerificationFlow,
)
from vsb.services.database import Database
from vsb.services.web import WebApp

REDIRECT = "https://vsb.example/oauth/callback"


@pytest.fixture
async def parts(
    db: Database,
) -> AsyncIterator[tuple[Sandbox, RestClient, VerificationFlow]]:
    async with open_sandbox(serve_http=False) as sb:
        rest = RestClient(
            Secret(sb.bot_token),
            api_base=sb.api_base,
            transport=httpx.ASGITransport(app=sb.asgi_app),
        )
        async with rest:
            config = OAuthConfig(
                client_id=sb.client_id,
                client_secret=Secret(sb.client_secret),
                redirect_uri=REDIRECT,
                authorize_url=sb.oauth_authorize_url,
                token_url=sb.oauth_token_url,
                userinfo_url=sb.oauth_userinfo_url,
            )
            flow = VerificationFlow(
                tokens=TokenSigner(Secret("verify-command-jwt-key-0123456789abc")),
                oauth=OAuthClient(
                    config, transport=httpx.ASGITransport(app=sb.asgi_app)
                ),
                store=DatabaseAuthStore(db),
                roles=rest,
            )
            yield sb, rest, flow


async def _run(
    sb: Sandbox, rest: RestClient, flow: VerificationFlow, user_id: int
) -> Any:
    """Dispatch a sandbox /verify through the real CommandService."""
    ix = await sb.run_command("verify", user_id=user_id)
    interaction: Interaction = decode_event(
        "INTERACTION_CREATE", msgspec.json.encode(ix.payload)
    )
    registry = CommandRegistry()
    registry.add_all(verify_commands(flow))
    service = CommandService(registry, rest, sync=False)
    await service.handle(interaction, trio.current_time())
    with trio.fail_after(5):
        await ix.wait_response()
    return ix


async def test_verify_answers_with_an_ephemeral_link(parts: Any, db: Database) -> None:
    sb, rest, flow = parts
    await settings.update(
        db, sb.default.guild_id, verified_role_id=sb.default.verified_role_id
    )
    ix = await _run(sb, rest, flow, sb.default.member_id)
    assert ix.callback_type == 4 and ix.ephemeral
    button = ix.callback_data["components"][0]["components"][0]
    assert button["style"] == 5
    link = urlsplit(button["url"])
    assert (
        f"{link.scheme}://{link.netloc}{link.path}" == "https://vsb.example/oauth/start"
    )
    claims = flow.tokens.decode_state(parse_qs(link.query)["state"][0])
    assert (claims.user_id, claims.guild_id) == (
        sb.default.member_id,
        sb.default.guild_id,
    )
    # The nonce was stored: it can be used once.
    assert await flow.store.consume_state(claims.nonce) is True
    assert await flow.store.consume_state(claims.nonce) is False


async def test_verify_without_a_verified_role(parts: Any) -> None:
    sb, rest, flow = parts
    ix = await _run(sb, rest, flow, sb.default.member_id)
    assert ix.ephemeral and "no verified role" in ix.callback_data["content"]
    assert "components" not in ix.callback_data or not ix.callback_data["components"]


async def test_verify_when_already_verified(parts: Any, db: Database) -> None:
    sb, rest, flow = parts
    await settings.update(
        db, sb.default.guild_id, verified_role_id=sb.default.verified_role_id
    )
    member = sb.state.guilds[sb.default.guild_id].members[sb.default.member_id]
    member.roles.append(sb.default.verified_role_id)
    ix = await _run(sb, rest, flow, sb.default.member_id)
    assert "already verified" in ix.callback_data["content"]


async def test_from_slash_command_to_verified_role(parts: Any, db: Database) -> None:
    """The whole story: /verify, the button's link, consent, the role."""
    sb, rest, flow = parts
    await settings.update(
        db, sb.default.guild_id, verified_role_id=sb.default.verified_role_id
    )
    ix = await _run(sb, rest, flow, sb.default.oauth_user_id)
    url = ix.callback_data["components"][0]["components"][0]["url"]
    app = WebApp(flow=flow)
    mounts = {
        "http://sandbox": httpx.ASGITransport(app=sb.asgi_app),
        "https://vsb.example": httpx.ASGITransport(app=app),
    }
    async with httpx.AsyncClient(mounts=mounts, follow_redirects=True) as browser:
        page = await browser.get(url)
    assert page.status_code == 200 and "You are verified" in page.text
    member = sb.state.guilds[sb.default.guild_id].members[sb.default.oauth_user_id]
    assert sb.default.verified_role_id in member.roles
    user = await users.get(db, sb.default.oauth_user_id)
    assert user is not None and user.verified


async def test_verify_over_http_interactions(parts: Any, db: Database) -> None:
    """POST /interactions, signed, answered by CommandService.answer_http."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    from vsb.services.web import InteractionVerifier

    sb, rest, flow = parts
    await settings.update(
        db, sb.default.guild_id, verified_role_id=sb.default.verified_role_id
    )
    registry = CommandRegistry()
    registry.add_all(verify_commands(flow))
    service = CommandService(
        registry, rest, sync=False, application_id=sb.application_id
    )
    key = Ed25519PrivateKey.generate()
    public = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex()
    app = WebApp(
        interaction_verifier=InteractionVerifier(public),
        interaction_handler=service.answer_http,
    )
    ix = await sb.run_command("verify", user_id=sb.default.member_id)
    body = msgspec.json.encode(ix.payload)
    timestamp = str(int(time.time()))
    headers = {
        "X-Signature-Ed25519": key.sign(timestamp.encode() + body).hex(),
        "X-Signature-Timestamp": timestamp,
        "Content-Type": "application/json",
    }
    async with trio.open_nursery() as nursery:
        await nursery.start(service.run)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://t"
        ) as client:
            response = await client.post("/interactions", content=body, headers=headers)
        nursery.cancel_scope.cancel()
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["type"] == 4 and answer["data"]["flags"] & 64
    url = answer["data"]["components"][0]["components"][0]["url"]
    assert url.startswith("https://vsb.example/oauth/start?state=")
