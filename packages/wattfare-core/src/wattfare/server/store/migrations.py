"""Versioned schema migrations, applied in order by `wattfare db upgrade`.

Each migration is a list of statements in portable SQL (SQLite and PostgreSQL both accept them), but for the
few marked `postgresql_only`. Money
columns are integer nano-USD (BIGINT); timestamps are ISO 8601 UTC text so both engines sort them alike.
Never edit a released migration: append a new one.
Test and live data are apart: every connection, suggested cap and ledger row belongs to one mode, so a
test key can never reach a live connection (as in a payment provider's test mode).
"""

from __future__ import annotations

from typing import Final, Literal

from wattfare.server.store.settle_usual import SETTLE_USUAL_FUNCTION

Dialect = Literal["sqlite", "postgresql"]

# Marks a statement only PostgreSQL runs (a function in PL/pgSQL, say): SQLite runs `SELECT 1` in its place.
_POSTGRESQL_ONLY = "-- PostgreSQL only\n"


def postgresql_only(statement: str) -> str:
    """`statement`, for PostgreSQL alone."""
    return _POSTGRESQL_ONLY + statement


MIGRATIONS: Final[tuple[tuple[int, tuple[str, ...]], ...]] = (
    (
        1,
        (
            """CREATE TABLE apps (
                id TEXT PRIMARY KEY,
                name TEXT NOT NULL,
                default_test_cap BIGINT NOT NULL,
                created_at TEXT NOT NULL
            )""",
            """CREATE TABLE api_keys (
                id TEXT PRIMARY KEY,
                app_id TEXT NOT NULL REFERENCES apps(id),
                mode TEXT NOT NULL CHECK (mode IN ('test', 'live')),
                kind TEXT NOT NULL CHECK (kind IN ('secret', 'publishable')),
                key_hash TEXT NOT NULL UNIQUE,
                hint TEXT NOT NULL,
                created_at TEXT NOT NULL,
                revoked_at TEXT
            )""",
            """CREATE TABLE connections (
                id TEXT PRIMARY KEY,
                app_id TEXT NOT NULL REFERENCES apps(id),
                app_user_id TEXT NOT NULL,
                mode TEXT NOT NULL CHECK (mode IN ('test', 'live')),
                state TEXT NOT NULL CHECK (state IN ('active', 'revoked')),
                cap BIGINT NOT NULL CHECK (cap >= 0),
                created_at TEXT NOT NULL,
                updated_at TEXT NOT NULL,
                UNIQUE (app_id, mode, app_user_id)
            )""",
            """CREATE TABLE counters (
                connection_id TEXT NOT NULL REFERENCES connections(id),
                window_key TEXT NOT NULL,
                spent BIGINT NOT NULL DEFAULT 0 CHECK (spent >= 0),
                reserved BIGINT NOT NULL DEFAULT 0 CHECK (reserved >= 0),
                PRIMARY KEY (connection_id, window_key)
            )""",
            """CREATE TABLE reservations (
                id TEXT PRIMARY KEY,
                connection_id TEXT NOT NULL REFERENCES connections(id),
                window_key TEXT NOT NULL,
                amount BIGINT NOT NULL CHECK (amount >= 0),
                model TEXT NOT NULL,
                created_at TEXT NOT NULL,
                expires_at TEXT NOT NULL
            )""",
            "CREATE INDEX reservations_expiry ON reservations (expires_at)",
            """CREATE TABLE ledger (
                seq INTEGER PRIMARY KEY,
                request_id TEXT NOT NULL UNIQUE,
                connection_id TEXT NOT NULL REFERENCES connections(id),
                app_id TEXT NOT NULL,
                mode TEXT NOT NULL,
                app_user_id TEXT NOT NULL,
                window_key TEXT NOT NULL,
                kind TEXT NOT NULL,
                model TEXT NOT NULL,
                amount BIGINT NOT NULL CHECK (amount >= 0),
                absorbed BIGINT NOT NULL DEFAULT 0,
                prompt_tokens BIGINT NOT NULL DEFAULT 0,
                completion_tokens BIGINT NOT NULL DEFAULT 0,
                created_at TEXT NOT NULL
            )""",
            "CREATE INDEX ledger_by_connection ON ledger (connection_id, window_key)",
            "CREATE INDEX ledger_by_app_time ON ledger (app_id, mode, created_at)",
            """CREATE TABLE requested_caps (
                app_id TEXT NOT NULL,
                mode TEXT NOT NULL,
                app_user_id TEXT NOT NULL,
                cap BIGINT NOT NULL,
                updated_at TEXT NOT NULL,
                PRIMARY KEY (app_id, mode, app_user_id)
            )""",
            """CREATE TABLE server_secrets (
                name TEXT PRIMARY KEY,
                value TEXT NOT NULL
            )""",
        ),
    ),
    (
        2,
        (
            """CREATE TABLE rate_counts (
                bucket TEXT NOT NULL,
                window_start TEXT NOT NULL,
                hits INTEGER NOT NULL,
                PRIMARY KEY (bucket, window_start)
            )""",
            """CREATE TABLE spent_tokens (
                token_id TEXT PRIMARY KEY,
                expires_at TEXT NOT NULL
            )""",
        ),
    ),
    (
        3,
        (
            # Members: people with a Wattfare account, who own one budget across all their connected apps.
            """CREATE TABLE members (
                id TEXT PRIMARY KEY,
                email TEXT NOT NULL UNIQUE,
                password_hash TEXT NOT NULL,
                created_at TEXT NOT NULL
            )""",
            """CREATE TABLE web_sessions (
                id_hash TEXT PRIMARY KEY,
                member_id TEXT NOT NULL REFERENCES members(id),
                created_at TEXT NOT NULL,
                expires_at TEXT NOT NULL
            )""",
            "CREATE INDEX web_sessions_by_member ON web_sessions (member_id)",
            "ALTER TABLE apps ADD COLUMN owner_member_id TEXT REFERENCES members(id)",
            "CREATE INDEX apps_by_owner ON apps (owner_member_id)",
            # The browser origins an app may call the session-token API from and receive consent results on.
            """CREATE TABLE app_origins (
                app_id TEXT NOT NULL REFERENCES apps(id),
                origin TEXT NOT NULL,
                PRIMARY KEY (app_id, origin)
            )""",
            "CREATE INDEX app_origins_by_origin ON app_origins (origin)",
            # Publishable keys are browser-safe, so the console may show them again; secret keys stay hashed only.
            "ALTER TABLE api_keys ADD COLUMN display TEXT",
            "ALTER TABLE connections ADD COLUMN member_id TEXT REFERENCES members(id)",
            "CREATE INDEX connections_by_member ON connections (member_id)",
            # Operator-granted credits: the ledger is the truth, the account row its derived counters.
            """CREATE TABLE credit_accounts (
                member_id TEXT PRIMARY KEY REFERENCES members(id),
                granted BIGINT NOT NULL DEFAULT 0 CHECK (granted >= 0),
                spent BIGINT NOT NULL DEFAULT 0 CHECK (spent >= 0),
                reserved BIGINT NOT NULL DEFAULT 0 CHECK (reserved >= 0),
                CHECK (spent + reserved <= granted)
            )""",
            """CREATE TABLE credit_ledger (
                seq INTEGER PRIMARY KEY,
                member_id TEXT NOT NULL REFERENCES members(id),
                kind TEXT NOT NULL CHECK (kind IN ('grant', 'charge')),
                amount BIGINT NOT NULL CHECK (amount >= 0),
                request_id TEXT UNIQUE,
                note TEXT NOT NULL DEFAULT '',
                created_at TEXT NOT NULL
            )""",
            "CREATE INDEX credit_ledger_by_member ON credit_ledger (member_id, created_at)",
            # The part of a reservation held on the member's credits, released by the same settle transaction.
            """CREATE TABLE credit_holds (
                reservation_id TEXT PRIMARY KEY,
                member_id TEXT NOT NULL REFERENCES members(id),
                amount BIGINT NOT NULL CHECK (amount >= 0)
            )""",
            # A member's own provider key (OpenRouter, via OAuth PKCE), encrypted at rest.
            """CREATE TABLE provider_keys (
                member_id TEXT PRIMARY KEY REFERENCES members(id),
                provider TEXT NOT NULL,
                ciphertext TEXT NOT NULL,
                hint TEXT NOT NULL,
                external_user_id TEXT,
                created_at TEXT NOT NULL
            )""",
            """CREATE TABLE oauth_states (
                state_hash TEXT PRIMARY KEY,
                member_id TEXT NOT NULL REFERENCES members(id),
                verifier TEXT NOT NULL,
                expires_at TEXT NOT NULL
            )""",
        ),
    ),
    (
        4,
        (
            # A rotated secret key keeps authenticating until `expires_at` (the grace its operator chose), then stops.
            "ALTER TABLE api_keys ADD COLUMN expires_at TEXT",
        ),
    ),
    (
        5,
        (
            # The app's own `max_tokens` for requests that send none; NULL keeps the server's default.
            "ALTER TABLE apps ADD COLUMN output_allowance INTEGER",
        ),
    ),
    (
        6,
        (
            # One word for budget held by a request in flight: "hold" (the code says hold, reserve is the verb).
            # SQLite cannot rename an index, so it is dropped and made again under the new name.
            "ALTER TABLE reservations RENAME TO holds",
            "DROP INDEX reservations_expiry",
            "CREATE INDEX holds_expiry ON holds (expires_at)",
            "ALTER TABLE credit_holds RENAME COLUMN reservation_id TO hold_id",
        ),
    ),
    (
        7,
        (
            # What each request called: rows written before embeddings existed were all chat completions. The
            # hold carries it too, so the settle (or the sweep, for a dead process's hold) books the right kind.
            "ALTER TABLE ledger ADD COLUMN endpoint TEXT NOT NULL DEFAULT 'chat.completions' "
            "CHECK (endpoint IN ('chat.completions', 'embeddings'))",
            "ALTER TABLE holds ADD COLUMN endpoint TEXT NOT NULL DEFAULT 'chat.completions' "
            "CHECK (endpoint IN ('chat.completions', 'embeddings'))",
        ),
    ),
    (
        8,
        (
            # The provider ceiling (billing/provider_ceiling.py): the per-member OpenRouter key the operator's
            # management key created for a credit-funded member, sealed by the key vault, and the limit OpenRouter
            # last accepted for it. `key_hash` is OpenRouter's id of the key, not a secret.
            """CREATE TABLE ceiling_keys (
                member_id TEXT PRIMARY KEY REFERENCES members(id),
                key_hash TEXT NOT NULL,
                ciphertext TEXT NOT NULL,
                monthly_limit BIGINT NOT NULL CHECK (monthly_limit >= 0),
                disabled INTEGER NOT NULL DEFAULT 0,
                synced_at TEXT NOT NULL
            )""",
            # When the provider last refused a member's request at its ceiling: shown on /account for that month.
            """CREATE TABLE ceiling_hits (
                member_id TEXT PRIMARY KEY REFERENCES members(id),
                window_key TEXT NOT NULL,
                hits INTEGER NOT NULL,
                last_at TEXT NOT NULL
            )""",
            # A member's own OpenRouter key carries the monthly limit they chose when linking it (NULL: none).
            "ALTER TABLE provider_keys ADD COLUMN monthly_limit BIGINT",
            "ALTER TABLE oauth_states ADD COLUMN monthly_limit BIGINT",
        ),
    ),
    (
        9,
        (
            # A member may remove a revoked app from their /account list; approving the app again brings it back.
            "ALTER TABLE connections ADD COLUMN removed_at TEXT",
        ),
    ),
    (
        10,
        (
            # One-time grants: a member allows one app a number of requests (and at most a sum), with no app user.
            # Each is metered through a connection of its own (app user `grant:<id>`, its one window the month it
            # was made in), so the cap guard, holds, settle, ledger and revocation serve it unchanged; this row adds
            # what a connection has not: the request count (bounded by CHECK too), the expiry and the token.
            """CREATE TABLE grants (
                id TEXT PRIMARY KEY,
                app_id TEXT NOT NULL REFERENCES apps(id),
                mode TEXT NOT NULL CHECK (mode IN ('test', 'live')),
                connection_id TEXT NOT NULL UNIQUE REFERENCES connections(id),
                member_id TEXT REFERENCES members(id),
                token_hash TEXT NOT NULL UNIQUE,
                requests_allowed INTEGER NOT NULL CHECK (requests_allowed > 0),
                requests_used INTEGER NOT NULL DEFAULT 0
                    CHECK (requests_used >= 0 AND requests_used <= requests_allowed),
                max_amount BIGINT CHECK (max_amount > 0),
                created_at TEXT NOT NULL,
                expires_at TEXT NOT NULL,
                revoked_at TEXT
            )""",
            "CREATE INDEX grants_by_member ON grants (member_id, created_at)",
            "CREATE INDEX grants_by_app ON grants (app_id, mode, created_at)",
            # The grant a hold counts a request of: a hold released (nothing reached a model) gives it back.
            "ALTER TABLE holds ADD COLUMN grant_id TEXT",
        ),
    ),
    (
        11,
        (
            # Password reset links (web/password_reset.py): kept by the SHA-256 of their random token, so a copy of
            # the database resets no one's password; each is spent once (`used_at`) and expires.
            """CREATE TABLE password_resets (
                token_hash TEXT PRIMARY KEY,
                member_id TEXT NOT NULL REFERENCES members(id),
                created_at TEXT NOT NULL,
                expires_at TEXT NOT NULL,
                used_at TEXT
            )""",
            "CREATE INDEX password_resets_by_member ON password_resets (member_id)",
        ),
    ),
    (
        12,
        (
            # Webhooks (store/webhook_records.py). An app's endpoints per mode; their signing secrets sealed by the
            # key vault (a copy of the database signs nothing), the one before a rotation kept for a day.
            """CREATE TABLE webhook_endpoints (
                id TEXT PRIMARY KEY,
                app_id TEXT NOT NULL REFERENCES apps(id),
                mode TEXT NOT NULL CHECK (mode IN ('test', 'live')),
                url TEXT NOT NULL,
                description TEXT NOT NULL DEFAULT '',
                secret TEXT NOT NULL,
                previous_secret TEXT,
                previous_until TEXT,
                state TEXT NOT NULL DEFAULT 'enabled' CHECK (state IN ('enabled', 'failing', 'disabled')),
                failing_since TEXT,
                created_at TEXT NOT NULL,
                deleted_at TEXT
            )""",
            "CREATE INDEX webhook_endpoints_by_app ON webhook_endpoints (app_id, mode)",
            # The outbox: written in the transaction of the change it announces, with one delivery row per endpoint.
            """CREATE TABLE webhook_events (
                id TEXT PRIMARY KEY,
                app_id TEXT NOT NULL REFERENCES apps(id),
                mode TEXT NOT NULL CHECK (mode IN ('test', 'live')),
                type TEXT NOT NULL,
                body TEXT NOT NULL,
                created_at TEXT NOT NULL
            )""",
            "CREATE INDEX webhook_events_by_app ON webhook_events (app_id, mode, created_at)",
            # A delivery is claimed by one process until `claimed_until` (a lease: a process killed mid-delivery
            # lets it go by expiring), then marked delivered, or rescheduled with backoff until it fails for good.
            """CREATE TABLE webhook_deliveries (
                event_id TEXT NOT NULL REFERENCES webhook_events(id),
                endpoint_id TEXT NOT NULL REFERENCES webhook_endpoints(id),
                state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'failed')),
                attempts INTEGER NOT NULL DEFAULT 0,
                next_attempt_at TEXT NOT NULL,
                claimed_until TEXT,
                last_attempt_at TEXT,
                last_status INTEGER,
                last_error TEXT,
                delivered_at TEXT,
                PRIMARY KEY (event_id, endpoint_id)
            )""",
            "CREATE INDEX webhook_deliveries_due ON webhook_deliveries (state, next_attempt_at)",
            "CREATE INDEX webhook_deliveries_by_endpoint ON webhook_deliveries (endpoint_id, next_attempt_at)",
            # The highest share of the cap (50, 80, 100) announced in the window: at most one `budget.threshold` each.
            "ALTER TABLE counters ADD COLUMN alerted INTEGER NOT NULL DEFAULT 0",
            # The member's own threshold email for a connection: 80 or 100 (percent of its cap), NULL for none.
            "ALTER TABLE connections ADD COLUMN alert_percent INTEGER DEFAULT 80",
            # Threshold emails to send: written by the settle that crossed the threshold, sent off the hot path.
            """CREATE TABLE member_alerts (
                connection_id TEXT NOT NULL REFERENCES connections(id),
                window_key TEXT NOT NULL,
                percent INTEGER NOT NULL,
                spent BIGINT NOT NULL,
                cap BIGINT NOT NULL,
                created_at TEXT NOT NULL,
                claimed_until TEXT,
                attempts INTEGER NOT NULL DEFAULT 0,
                sent_at TEXT,
                PRIMARY KEY (connection_id, window_key, percent)
            )""",
            "CREATE INDEX member_alerts_unsent ON member_alerts (sent_at, created_at)",
            # `funding.invalid` at most once per connection and window.
            """CREATE TABLE funding_notices (
                connection_id TEXT NOT NULL REFERENCES connections(id),
                window_key TEXT NOT NULL,
                created_at TEXT NOT NULL,
                PRIMARY KEY (connection_id, window_key)
            )""",
        ),
    ),
    (
        13,
        (
            # One user's ledger rows in time order: `GET /usage?appUserId=` and the member's daily chart on
            # /account read a user's month here, not the whole app's month or the connection's whole history
            # (benchmarks/ledger_scale.py, 10M rows: a user-month from 0.8 s on SQLite, 2.4 s on PostgreSQL, to
            # under 1 ms). IF NOT EXISTS: building it locks the ledger against settles (75-95 s at 10M rows), so
            # on a big PostgreSQL ledger an operator may build it first with CREATE INDEX CONCURRENTLY.
            "CREATE INDEX IF NOT EXISTS ledger_by_user_time ON ledger (app_id, mode, app_user_id, created_at)",
        ),
    ),
    (
        14,
        (
            # PostgreSQL's settle in one round trip (`postgres.store.PostgresStore.settle`): the usual settle, where
            # the cap does not bind and no alert threshold is crossed, taken whole in one call. Anything else
            # raises WF001, which undoes the call (the hold is still there) and sends the settle down the
            # statement-per-step path, where `wattfare.metering` decides it as always. SQLite needs none: its
            # grouped transaction costs no round trips.
            postgresql_only(SETTLE_USUAL_FUNCTION),
        ),
    ),
    (
        15,
        (
            # How many requests a ledger row stands for: 1 for every row a request writes, more for a roll-up row
            # that `wattfare ledger archive` leaves in place of one day's rows (ledger_archive). Usage reports count
            # SUM(requests), so they read the same before and after an archive. Instant on both engines (a
            # constant default rewrites no row).
            "ALTER TABLE ledger ADD COLUMN requests BIGINT NOT NULL DEFAULT 1",
        ),
    ),
    (
        16,
        (
            # Each `wattfare ledger archive` run, recorded as it starts: `GET /usage` refuses a range that cuts into
            # a month rolled up by month (its roll-up rows are dated the month's first instant, so part of the month
            # cannot be told apart).
            """CREATE TABLE ledger_archives (
                started_at TEXT NOT NULL,
                archived_before TEXT NOT NULL,
                rolled_up_by TEXT NOT NULL CHECK (rolled_up_by IN ('day', 'month')),
                PRIMARY KEY (started_at, archived_before, rolled_up_by)
            )""",
        ),
    ),
)


# The few spellings the two engines disagree on, translated from the SQLite form.
_POSTGRES_SPELLINGS: Final[tuple[tuple[str, str], ...]] = (("seq INTEGER PRIMARY KEY", "seq BIGSERIAL PRIMARY KEY"),)


def statements_for(version: int, dialect: Dialect) -> tuple[str, ...]:
    """The statements of one migration, as the given engine spells them."""
    statements = next(s for v, s in MIGRATIONS if v == version)
    if dialect == "sqlite":
        # In place of what only PostgreSQL has, a statement that does nothing: both engines run as many.
        return tuple("SELECT 1" if s.startswith(_POSTGRESQL_ONLY) else s for s in statements)
    translated: list[str] = []
    for statement in statements:
        for sqlite_form, postgres_form in _POSTGRES_SPELLINGS:
            statement = statement.replace(sqlite_form, postgres_form)
        translated.append(statement)
    return tuple(translated)
