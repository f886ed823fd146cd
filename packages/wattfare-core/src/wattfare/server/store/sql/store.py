"""The whole store in SQL, written once: every concern over one engine, whichever database it drives."""

from __future__ import annotations

from wattfare.server.store.sql.access_counters import SqlAccessCounters
from wattfare.server.store.sql.administration import SqlAdministration
from wattfare.server.store.sql.apps_and_keys import SqlAppsAndKeys
from wattfare.server.store.sql.ceilings import SqlCeilings
from wattfare.server.store.sql.connections import SqlConnections
from wattfare.server.store.sql.console import SqlDeveloperConsole
from wattfare.server.store.sql.console_usage import SqlConsoleUsage
from wattfare.server.store.sql.funding import SqlFunding
from wattfare.server.store.sql.grants import SqlGrants
from wattfare.server.store.sql.ledger import SqlLedger
from wattfare.server.store.sql.ledger_archive import SqlLedgerArchive
from wattfare.server.store.sql.lifecycle import SqlLifecycle
from wattfare.server.store.sql.member_connections import SqlMemberConnections
from wattfare.server.store.sql.members import SqlMembers
from wattfare.server.store.sql.metering import SqlMetering
from wattfare.server.store.sql.password_resets import SqlPasswordResets
from wattfare.server.store.sql.webhooks import SqlWebhooks


class SqlStore(
    SqlLifecycle,
    SqlAppsAndKeys,
    SqlConnections,
    SqlAccessCounters,
    SqlMetering,
    SqlLedger,
    SqlLedgerArchive,
    SqlMembers,
    SqlPasswordResets,
    SqlDeveloperConsole,
    SqlMemberConnections,
    SqlFunding,
    SqlCeilings,
    SqlGrants,
    SqlAdministration,
    SqlWebhooks,
    SqlConsoleUsage,
):
    """A `Store`: each concern is complete on its own over the engine it is given; this is their union.

    The concerns share nothing but the engine (`SqlConcern.__init__`), so none relies on another's methods:
    what two of them need (the cap guard, credit holds, app profiles) is a module of functions they both call.
    """
