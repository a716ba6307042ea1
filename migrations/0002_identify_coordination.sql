-- depends: 0001_initial
-- Identify coordination across processes (vsb/services/coordination.py):
-- the last IDENTIFY of each max_concurrency bucket, stamped with the
-- server's clock, and the shared session-start budget (a single row).

CREATE TABLE identify_turns (
    bucket           integer PRIMARY KEY,
    last_identify_at timestamptz NOT NULL
);

CREATE TABLE identify_budget (
    id        boolean PRIMARY KEY DEFAULT true CHECK (id),
    remaining integer NOT NULL,
    reset_at  timestamptz NOT NULL
);
