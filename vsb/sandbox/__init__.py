"""A Discord emulator (gateway, REST, OAuth2) for tests and local runs.

Start it inside a trio test or nursery; point any client at its URLs::

    from vsb.sandbox import open_sandbox

    async with open_sandbox() as sb:          # keyword options below
        sb.api_base            # "http://127.0.0.1:PORT/api/v10"
        sb.gateway_url         # "ws://127.0.0.1:PORT2/" (also GET /gateway/bot)
        sb.resume_gateway_url  # "ws://127.0.0.1:PORT2/resume" (READY's)
        sb.oauth_authorize_url, sb.oauth_token_url, sb.oauth_userinfo_url
        sb.bot_token (str), sb.application_id (int), sb.client_id (str),
        sb.client_secret, sb.public_key
        sb.asgi_app            # for httpx.ASGITransport(app=sb.asgi_app)
        sb.state               # State: guilds, channels, roles, members, messages
        sb.default             # DefaultIds of the seeded guild
        sb.actions             # ActionLog: .of(kind, **fields), .last, .wait_for
        sb.gateway             # GatewayServer: .connections, .sessions
        sb.faults              # Faults (below)
        sb.oauth               # OAuthServer: .deny_next()

Scenario (each dispatches the matching gateway event)::

    msg = await sb.post_message("hi", channel_id=None, author_id=None,
                                mentions=None, embeds=None)      # MESSAGE_CREATE
    await sb.edit_message(msg.id, "edited")                      # MESSAGE_UPDATE
    member = await sb.member_join("newbie")                      # GUILD_MEMBER_ADD
    ix = await sb.run_command("moderate", {"action": "mute",
            "target": sb.default.member_id, "reason": "spam"},
            user_id=None, kind=1, target_id=None)                # INTERACTION_CREATE
    ix = await sb.run_command("Analyze Message", kind=3, target_id=msg.id)
    ix = await sb.press_button(message_id, "review:approve:1", user_id=None)
    ix = await sb.submit_modal("reason_modal", {"reason": "x"})
    ix = await sb.autocomplete("case", {"number": "1"}, focused="number")
    await ix.wait_response(); ix.callback_type; ix.ephemeral

Faults::

    sb.faults.stop_heartbeat_acks(shard_id=None); sb.faults.resume_heartbeat_acks()
    sb.faults.request_heartbeat()          # op 1
    sb.faults.reconnect()                  # op 7
    sb.faults.invalid_session(False)       # op 9 (False also ends the session)
    await sb.faults.close(4000)            # close with a code
    await sb.faults.drop_tcp()             # no close frame
    sb.faults.split_frames("GUILD_CREATE", frames=4, times=1)
    sb.faults.fail_rest(3, status=429, scope="shared", retry_after=1.5, route=None)
    sb.faults.fail_rest(1, status=502)
    sb.faults.close_dms(user_id)           # DMs answer 50007

``open_sandbox`` options: ``seed=True``, ``bot_token=None``, ``epoch=None``
(Unix start; default wall time), ``rate_limits={"POST /channels/{channel_id}
/messages": (5, 5.0)}``, ``default_rate_limit=(50, 1.0)``,
``global_limit=50``, ``redirect_uris=None``, ``serve_http=True``, and the
gateway knobs of :class:`GatewayConfig` as keywords (``heartbeat_interval``,
``shards``, ``max_concurrency``, ``session_start_remaining``,
``enabled_intents``, ``member_chunk_size``, ...). Every timer runs on trio's
clock, so ``MockClock`` drives heartbeats, deadlines and rate limits.

Full reference: ``docs/sandbox.md``.
"""

from vsb.gateway.protocol import Opcode as Op
from vsb.sandbox.actions import Action, ActionLog
from vsb.sandbox.gateway import CloseCode, GatewayConfig
from vsb.sandbox.intents import Intent
from vsb.sandbox.interactions import Interaction
from vsb.sandbox.permissions import Perm
from vsb.sandbox.sandbox import Faults, Sandbox, open_sandbox
from vsb.sandbox.state import DefaultIds, State

__all__ = [
    "Action",
    "ActionLog",
    "CloseCode",
    "DefaultIds",
    "Faults",
    "GatewayConfig",
    "Intent",
    "Interaction",
    "Op",
    "Perm",
    "Sandbox",
    "State",
    "open_sandbox",
]
