"""What both backends share and nothing above the storage package needs to know:
the schema version, how long a call may wait on the store, and the server's clock.
Driver-free."""
from __future__ import annotations

import os

from ..errors import InvalidInput

# The number of steps in db.migrations (a test checks the two agree). Kept here so
# that opening an up-to-date store never imports the migrations.
SCHEMA_VERSION = 11

# How long any one call may wait on the store (a lock held by another process, a server
# that does not answer), in seconds. CLAUDE_API_TIMEOUT sets it for everything; without
# it, the request path (`check`, `keys verify`, `record_usage`) waits a few seconds, and
# admin writes, imports and reports longer.
ENV_TIMEOUT = "CLAUDE_API_TIMEOUT"
REQUEST_TIMEOUT_S = 5.0
ADMIN_TIMEOUT_S = 30.0

# PostgreSQL's clock, in epoch milliseconds, as SQL: every host shares one time line
# (the gate's lookup and admissions, claude_take_slot, Connection.now_ms).
SERVER_CLOCK_MS = "floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint"


class Wrote:
    """Whether this process has committed a change to a store through a backend's write
    paths (a write transaction that changed rows, or a statement that wrote on its own;
    the synchronous connections, which are the CLI's). The CLI's line for a Ctrl-C says
    "nothing was changed" only while it is False: a Ctrl-C after a command stored its
    work must not say so."""

    changed = False


def timeout(given=None, *, request: bool = False) -> float:
    """The bound on a wait: `given` (seconds), else CLAUDE_API_TIMEOUT, else the default
    for the request path or for everything else."""
    if given is None:
        given = os.environ.get(ENV_TIMEOUT) or None
        if given is None:
            return REQUEST_TIMEOUT_S if request else ADMIN_TIMEOUT_S
        what = ENV_TIMEOUT
    else:
        what = "timeout"
    try:
        if isinstance(given, str) and not given.isascii():
            raise ValueError  # float() would take other scripts' digits
        seconds = float(given.strip() if isinstance(given, str) else given)
        if isinstance(given, bool) or not 0 < seconds <= 86_400:
            raise ValueError
    except (TypeError, ValueError, AttributeError):
        raise InvalidInput(f"{what} must be a number of seconds above 0 and at most 86400") from None
    return seconds
