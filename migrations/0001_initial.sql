-- VSB schema: users and roles, guild settings, moderation cases, the review
-- queue, the audit log, OAuth states, command sync and gateway sessions.
-- Snowflakes are bigint, times are timestamptz.

CREATE TABLE users (
    id          bigint PRIMARY KEY,
    login       text,
    role        text NOT NULL DEFAULT 'user',
    verified    boolean NOT NULL DEFAULT false,
    verified_at timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE roles (
    name        text PRIMARY KEY,
    description text NOT NULL DEFAULT ''
);

INSERT INTO roles (name, description) VALUES
    ('moderator', 'may read cases and the review queue'),
    ('admin', 'everything a moderator may, and more');

CREATE TABLE user_roles (
    user_id    bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role       text NOT NULL REFERENCES roles (name) ON DELETE CASCADE,
    granted_by bigint,
    granted_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, role)
);

CREATE TABLE guild_settings (
    guild_id            bigint PRIMARY KEY,
    log_channel_id      bigint,
    verified_role_id    bigint,
    auto_threshold      double precision NOT NULL DEFAULT 0.95
        CHECK (auto_threshold BETWEEN 0 AND 1),
    review_threshold    double precision NOT NULL DEFAULT 0.80
        CHECK (review_threshold BETWEEN 0 AND 1),
    exempt_role_ids     bigint[] NOT NULL DEFAULT '{}',
    ai_enabled          boolean NOT NULL DEFAULT true,
    escalate_after      integer NOT NULL DEFAULT 3 CHECK (escalate_after >= 0),
    escalate_window_s   integer NOT NULL DEFAULT 86400 CHECK (escalate_window_s > 0),
    escalate_timeout_s  integer NOT NULL DEFAULT 3600 CHECK (escalate_timeout_s > 0),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    CHECK (review_threshold <= auto_threshold)
);

-- One row per guild holding the last case number handed out. Taking a number
-- is an UPDATE of this row inside the case's transaction: the row lock makes
-- concurrent writers queue, and a rolled back case gives its number back.
CREATE TABLE guild_case_counters (
    guild_id    bigint PRIMARY KEY,
    last_number integer NOT NULL
);

CREATE TABLE mod_cases (
    id           bigserial PRIMARY KEY,
    guild_id     bigint NOT NULL,
    number       integer NOT NULL CHECK (number > 0),
    action       text NOT NULL CHECK (action <> ''),
    target_id    bigint NOT NULL,
    moderator_id bigint NOT NULL,
    reason       text NOT NULL DEFAULT '',
    duration_s   integer CHECK (duration_s > 0),
    expires_at   timestamptz,
    revoked      boolean NOT NULL DEFAULT false,
    revoked_at   timestamptz,
    revoked_by   bigint,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (guild_id, number)
);

-- /warnings and repeat-offender escalation: one member's cases, newest first.
CREATE INDEX mod_cases_target ON mod_cases (guild_id, target_id, created_at DESC);
-- The expiry scheduler: only live temporary actions.
CREATE INDEX mod_cases_due ON mod_cases (expires_at)
    WHERE expires_at IS NOT NULL AND NOT revoked;

CREATE TABLE flagged_messages (
    id                bigserial PRIMARY KEY,
    guild_id          bigint NOT NULL,
    channel_id        bigint NOT NULL,
    message_id        bigint NOT NULL,
    author_id         bigint NOT NULL,
    content           text NOT NULL DEFAULT '',
    scores            jsonb NOT NULL DEFAULT '{}',
    max_score         double precision NOT NULL DEFAULT 0,
    model             text NOT NULL DEFAULT '',
    status            text NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'actioned', 'dismissed')),
    review_message_id bigint,
    reviewer_id       bigint,
    decision          text,
    case_id           bigint REFERENCES mod_cases (id) ON DELETE SET NULL,
    created_at        timestamptz NOT NULL DEFAULT now(),
    decided_at        timestamptz
);

CREATE INDEX flagged_pending ON flagged_messages (guild_id, created_at)
    WHERE status = 'pending';
CREATE INDEX flagged_message ON flagged_messages (message_id);

CREATE TABLE audit_log (
    id         bigserial PRIMARY KEY,
    at         timestamptz NOT NULL DEFAULT now(),
    guild_id   bigint,
    table_name text NOT NULL,
    operation  text NOT NULL,
    actor_id   bigint,
    row_id     text,
    change     jsonb NOT NULL DEFAULT '{}'
);

CREATE INDEX audit_log_guild ON audit_log (guild_id, at DESC);
CREATE INDEX audit_log_table ON audit_log (table_name, row_id);

CREATE TABLE oauth_states (
    nonce      text PRIMARY KEY,
    user_id    bigint,
    guild_id   bigint,
    expires_at timestamptz NOT NULL,
    used_at    timestamptz,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX oauth_states_expiry ON oauth_states (expires_at);

CREATE TABLE command_sync (
    scope     text PRIMARY KEY,
    hash      text NOT NULL,
    synced_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE gateway_sessions (
    shard_id    integer PRIMARY KEY,
    session_id  text NOT NULL,
    seq         bigint,
    resume_url  text NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
