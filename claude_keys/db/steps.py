"""The request path's logic written once, run on a connection of either kind.

Deciding a request (gate.py), recording its usage (usage.py) and releasing it are a few
statements with the product's rules between them. They are written as *steps*: a
generator that yields each statement it needs, as an operation of the backend interface
(claude_keys.db), and is sent back its answer; it returns the result. `run` plays the
steps on a connection in the calling thread (KeyStore, the CLI); the async store plays
the same steps on an asynchronous connection (db/async_connections.py), so the rules and
the statements exist once, and only the waiting differs.

An operation is a tuple, its first item the name of the connection's method:
- ("one", sql, params) / ("all", sql, params): fetchone() / fetchall() of a statement;
- ("run", sql, params): a statement whose rows are not read;
- ("write_one", sql, params), ("row_with_clock", sql, params), ("take_slot", ...),
  ("lock_scopes", scopes), ("record_request", row, lineage), ("write_usage", sql,
  params): the connection's method of that name;
- ("transaction", steps): the inner steps inside the connection's transaction().
"""
from __future__ import annotations


def run(conn, steps, first=None):
    """Play `steps` on `conn` (a connection of the backend interface); their result.
    `first`: an operation the steps asked for already, not yet played (steps begun on
    the event loop and carried on in a worker: db/async_connections.py)."""
    send, value = steps.send, None
    try:
        if first is not None:
            value = play(conn, first)
        while True:
            op = send(value)
            name = op[0]  # (the commonest operations inline: this is every request's path)
            if name == "one":
                value = conn.execute(op[1], op[2]).fetchone()
            elif name == "all":
                value = conn.execute(op[1], op[2]).fetchall()
            elif name == "run" or name == "transaction":
                value = play(conn, op)
            else:
                value = getattr(conn, name)(*op[1:])
    except StopIteration as stop:
        return stop.value


def play(conn, op: tuple):
    """One operation on `conn`; its answer."""
    name = op[0]
    if name == "one":
        return conn.execute(op[1], op[2]).fetchone()
    if name == "all":
        return conn.execute(op[1], op[2]).fetchall()
    if name == "run":
        conn.execute(op[1], op[2])
        return None
    if name == "transaction":
        with conn.transaction():
            return run(conn, op[1])
    return getattr(conn, name)(*op[1:])


async def run_async(conn, steps):
    """Play `steps` on an asynchronous connection (the same methods, awaitable)."""
    send, value = steps.send, None
    try:
        while True:
            op = send(value)
            name = op[0]
            if name == "transaction":
                async with conn.transaction():
                    value = await run_async(conn, op[1])
            else:
                value = await getattr(conn, name)(*op[1:])
    except StopIteration as stop:
        return stop.value
