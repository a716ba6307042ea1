"""The verification flow end to end: the sandbox's OAuth2 emulator and REST
API, the real PostgreSQL store, the web app (ASGI, and once through a real
hypercorn listener on 127.0.0.1)."""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import AsyncIterator
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
import trio

from vsb.db import audit, settings, users
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
from vsb.services.web import SESSION_COOKIE, WebApp, WebService

PUBLIC = "https://vsb.example"
REDIRECT = f"{PUBLIC}/oauth/callback"
JWT_KEY = "sandbox-jwt-key-0123456789-abcdefghijkl"


@dataclasses.dataclass
class Scene:
    sb: Sandbox
    db: Database
    flow: VerificationFlow
    app: WebApp
    rest: RestClient

    @property
    def guild(self) -> int:
        return self.sb.default.guild_id

    @property
    def user(self) -> int:
        return self.sb.default.oauth_user_id

    def secrets(self) -> list[str]:
        return [self.sb.client_secret, self.sb.bot_token, JWT_KEY]

    def browser(self) -> httpx.AsyncClient:
        """A browser reaching both the sandbox (Discord) and the web app."""
        mounts = {
            "http://sandbox": httpx.ASGITransport(app=self.sb.asgi_app),
            PUBLIC: httpx.ASGITransport(app=self.app),
        }
        return httpx.AsyncClient(mounts=mounts, follow_redirects=True)


@pytest.fixture
async def scene(db: Database) -> AsyncIterator[Scene]:
    async with open_sandbox(serve_http=False, redirect_uris=[REDIRECT]) as sb:
        sandbox = httpx.ASGITransport(app=sb.asgi_app)
        # No 5xx retries: their backoff would be real sleeps in these tests.
        rest = RestClient(
            Secret(sb.bot_token), api_base=sb.api_base, transport=sandbox, max_retries=0
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
                tokens=TokenSigner(Secret(JWT_KEY)),
                oauth=OAuthClient(config, transport=sandbox),
                store=DatabaseAuthStore(db),
                roles=rest,
            )
            app = WebApp(flow=flow)
            app.mark_started()
            await settings.update(
                db, sb.default.guild_id, verified_role_id=sb.default.verified_role_id
            )
            yield Scene(sb, db, flow, app, rest)


async def _verify(scene: Scene, browser: httpx.AsyncClient) -> httpx.Response:
    link = await scene.flow.verification_link(user_id=scene.user, guild_id=scene.guild)
    return await browser.get(link)


def _logged(caplog: pytest.LogCaptureFixture) -> str:
    return "\n".join(
        record.getMessage() + repr(vars(record))
        for record in caplog.records
        # The test browser's own request lines are not the bot's logs.
        if not (record.name == "httpx" and "vsb.example" in record.getMessage())
    )


async def test_full_verification_against_the_sandbox(
    scene: Scene, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with scene.browser() as browser:
        page = await _verify(scene, browser)
        me = await browser.get(f"{PUBLIC}/api/me")

    assert page.status_code == 200, page.text
    assert "You are verified" in page.text
    hops = [str(r.url).split("?")[0] for r in page.history]
    assert hops == [f"{PUBLIC}/oauth/start", scene.sb.oauth_authorize_url]

    # Discord side: the role was given, with an audit-log reason; PKCE was used.
    given = scene.sb.actions.of("member.role_add", user_id=scene.user)
    assert [a["role_id"] for a in given] == [scene.sb.default.verified_role_id]
    assert given[0].reason == "Verified through OAuth2 as verifier"
    assert scene.sb.actions.last("oauth.authorize")["pkce"] is True
    member = scene.sb.state.guilds[scene.guild].members[scene.user]
    assert scene.sb.default.verified_role_id in member.roles

    # Our side: the user is verified with the login, and audited.
    user = await users.get(scene.db, scene.user)
    assert user is not None and user.verified and user.login == "verifier"
    entries = await audit.recent(scene.db, table_name="users")
    assert [(e.operation, e.row_id) for e in entries] == [("verify", str(scene.user))]

    assert me.status_code == 200
    assert me.json() == {
        "id": str(scene.user),
        "login": "verifier",
        "verified": True,
        "roles": [],
    }
    # The code (from the provider's redirect) and the access token are
    # secrets too: neither may show in a page, a header or our logs.
    callback = urlsplit(page.history[-1].headers["location"])
    code = dict(parse_qsl(callback.query))["code"]
    secrets = [*scene.secrets(), code, *scene.sb.oauth.access]
    assert len(secrets) == 5
    for text in (page.text, str(page.headers), _logged(caplog)):
        for secret in secrets:
            assert secret not in text
    for hop in page.history:
        for secret in [*scene.secrets(), *scene.sb.oauth.access]:
            assert secret not in str(hop.headers)


async def test_denied_at_the_emulator(scene: Scene) -> None:
    scene.sb.oauth.deny_next()
    async with scene.browser() as browser:
        page = await _verify(scene, browser)
    assert page.status_code == 400 and "Verification cancelled" in page.text
    assert scene.sb.actions.of("member.role_add") == []
    assert await users.get(scene.db, scene.user) is None


async def test_reused_state_against_the_sandbox(scene: Scene) -> None:
    async with scene.browser() as browser:
        first = await _verify(scene, browser)
        callback = str(first.history[-1].headers["location"])
        again = await browser.get(callback)
    assert first.status_code == 200
    assert again.status_code == 400 and "Link already used" in again.text
    assert len(scene.sb.actions.of("member.role_add")) == 1


async def test_role_refused_by_hierarchy(scene: Scene) -> None:
    # A verified role above the bot's own: Discord answers 50013.
    high = scene.sb.state.add_role(scene.guild, "Verified+", position=5)
    await settings.update(scene.db, scene.guild, verified_role_id=high.id)
    async with scene.browser() as browser:
        page = await _verify(scene, browser)
    assert page.status_code == 502 and "Role could not be given" in page.text
    assert await users.get(scene.db, scene.user) is None
    assert "set-cookie" not in page.headers


async def test_not_a_member(scene: Scene) -> None:
    stranger = scene.sb.state.add_user("stranger")
    scene.sb.state.oauth_user_id = stranger.id
    link = await scene.flow.verification_link(user_id=stranger.id, guild_id=scene.guild)
    async with scene.browser() as browser:
        page = await browser.get(link)
    assert page.status_code == 409 and "Not a member" in page.text
    assert await users.get(scene.db, stranger.id) is None


async def test_other_account_than_the_one_that_ran_verify(scene: Scene) -> None:
    link = await scene.flow.verification_link(
        user_id=scene.sb.default.member_id, guild_id=scene.guild
    )
    async with scene.browser() as browser:
        page = await browser.get(link)
    assert page.status_code == 403 and "Different account" in page.text
    assert scene.sb.actions.of("member.role_add") == []


async def test_discord_down_leaves_nothing_half_done(scene: Scene) -> None:
    scene.sb.faults.fail_rest(
        1, status=503, route="PUT /guilds/{guild_id}/members/{user_id}/roles/{role_id}"
    )
    async with scene.browser() as browser:
        page = await _verify(scene, browser)
    assert page.status_code == 503 and "Role not given yet" in page.text
    assert await users.get(scene.db, scene.user) is None


async def test_provider_refuses_the_client(scene: Scene) -> None:
    bad = dataclasses.replace(
        scene.flow.oauth.config, client_secret=Secret("wrong-secret-value")
    )
    scene.flow.oauth.config = bad
    async with scene.browser() as browser:
        page = await _verify(scene, browser)
    assert page.status_code == 502 and "Sign-in provider error" in page.text


async def test_api_roles_from_the_database(scene: Scene) -> None:
    async with scene.browser() as browser:
        await _verify(scene, browser)
        assert (await browser.get(f"{PUBLIC}/api/review")).status_code == 403
        await users.grant_role(scene.db, scene.user, "moderator")
        cases = await browser.get(f"{PUBLIC}/api/cases", params={"guild": scene.guild})
        review = await browser.get(f"{PUBLIC}/api/review")
    assert cases.status_code == 200 and cases.json()["cases"] == []
    assert review.status_code == 200 and review.json() == {"items": []}


async def test_through_a_real_listener(db: Database) -> None:
    """The sandbox and the web app both on 127.0.0.1 sockets; a real browser."""
    async with (
        open_sandbox(serve_http=True) as sb,
        RestClient(Secret(sb.bot_token), api_base=sb.api_base) as rest,
    ):
        await settings.update(
            db, sb.default.guild_id, verified_role_id=sb.default.verified_role_id
        )
        async with trio.open_nursery() as nursery:
            app = WebApp()
            web = WebService(app, host="127.0.0.1", port=0)
            port = await nursery.start(web.run)
            redirect = f"http://127.0.0.1:{port}/oauth/callback"
            config = OAuthConfig(
                client_id=sb.client_id,
                client_secret=Secret(sb.client_secret),
                redirect_uri=redirect,
                authorize_url=sb.oauth_authorize_url,
                token_url=sb.oauth_token_url,
                userinfo_url=sb.oauth_userinfo_url,
            )
            flow = VerificationFlow(
                tokens=TokenSigner(Secret(JWT_KEY)),
                oauth=OAuthClient(config),
                store=DatabaseAuthStore(db),
                roles=rest,
            )
            # The redirect URI names the port, known only once bound.
            app.flow, app.tokens, app.store = flow, flow.tokens, flow.store
            link = await flow.verification_link(
                user_id=sb.default.oauth_user_id, guild_id=sb.default.guild_id
            )
            assert urlsplit(link).netloc == f"127.0.0.1:{port}"
            async with httpx.AsyncClient(follow_redirects=True) as browser:
                page = await browser.get(link)
                me = await browser.get(f"http://127.0.0.1:{port}/api/me")
            await web.drain()
    assert page.status_code == 200 and "You are verified" in page.text
    assert "secure" not in page.history[-1].headers.get("set-cookie", "").lower()
    cookie = page.headers["set-cookie"]
    assert cookie.startswith(SESSION_COOKIE) and "httponly" in cookie.lower()
    assert me.status_code == 200 and me.json()["login"] == "verifier"


async def test_state_expired_between_start_and_callback(scene: Scene) -> None:
    now = [time.time()]
    scene.flow.tokens._clock = lambda: now[0]
    link = await scene.flow.verification_link(user_id=scene.user, guild_id=scene.guild)
    async with scene.browser() as browser:
        browser.follow_redirects = False
        to_provider = await browser.get(link)
        to_callback = await browser.get(to_provider.headers["location"])
        now[0] += 601  # the member left the consent page open too long
        page = await browser.get(to_callback.headers["location"])
    assert page.status_code == 400 and "Link expired" in page.text
    assert scene.sb.actions.of("oauth.token") == []
    assert scene.sb.actions.of("member.role_add") == []
