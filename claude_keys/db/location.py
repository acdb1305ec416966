"""Where a store is, from what a user typed or pasted, and how to name it without its
password. Driver-free: nothing here imports a database driver.

A store is a SQLite file path, or a PostgreSQL database in any spelling a user pastes:
`postgresql://` / `postgres://` in any letter case, SQLAlchemy's `postgresql+psycopg://`
and `postgresql+psycopg2://` (most DATABASE_URLs), libpq keyword strings (`host=db
dbname=claude password=…`), with surrounding whitespace. Any other `word://…` is refused
(a typo must not become a file named after a URI, password and all), and the refusal
does not repeat what was given.
"""
from __future__ import annotations

from functools import lru_cache

from ..errors import InvalidInput

POSTGRES = "postgresql"
_POSTGRES_SCHEMES = {"postgresql", "postgres", "postgresql+psycopg", "postgresql+psycopg2",
                     "postgres+psycopg", "postgres+psycopg2"}
# libpq's connection keywords: a string that starts with one of them and `=` is a
# keyword/value connection string (https://www.postgresql.org/docs/current/libpq-connect.html).
_KEYWORDS = ("host", "hostaddr", "port", "dbname", "user", "password", "passfile", "service",
             "sslmode", "sslcert", "sslkey", "sslrootcert", "sslpassword", "application_name",
             "connect_timeout", "options", "target_session_attrs", "require_auth", "channel_binding",
             "gssencmode", "keepalives", "client_encoding", "load_balance_hosts")
_SECRET_PARAMETERS = ("password", "sslpassword")


@lru_cache(maxsize=None)
def _pattern(name: str):
    """Compiled on first use: a plain file path (the request path's case) needs none,
    nor `re` itself."""
    import re

    return re.compile({"scheme": r"([A-Za-z][A-Za-z0-9+.\-]*):",
                       "keywords": r"(?:%s)\s*=" % "|".join(_KEYWORDS)}[name], re.I)


def locate(value: str) -> tuple[str, str]:
    """(kind, target): kind "sqlite" with the file path, or POSTGRES with the location
    normalized for libpq (the scheme lower-cased, a driver suffix dropped). Bad input
    (a URI of another kind) is InvalidInput that does not repeat the value."""
    text = value.strip()
    if ":" not in text and "=" not in text:
        return "sqlite", value
    scheme = _pattern("scheme").match(text)
    if scheme:
        name = scheme.group(1).lower()
        if name in _POSTGRES_SCHEMES:
            return POSTGRES, "postgresql:" + text[scheme.end():]
        if text[scheme.end():].startswith("//"):
            raise InvalidInput("the store must be a SQLite file path or a PostgreSQL URI "
                               "(postgresql://…); that URI is of another kind")
    if _pattern("keywords").match(text):
        return POSTGRES, text
    return "sqlite", value


def is_server(target: str) -> bool:
    """True when the store is a database server's, not a local file."""
    return locate(target)[0] == POSTGRES


def masked(location: str) -> str:
    """A PostgreSQL location with every password replaced by `***`, for messages, `db
    path` and the audit trail. In a URI: the `password=`/`sslpassword=` parameters
    (however percent-encoded), and the userinfo's password. A password may hold what a
    URI should not (`?`, `#`, `@`, `/`, unencoded: libpq takes some of them), so
    everything from the first `:` after the scheme to the last `@` is masked: more than
    the password at worst, never less; without an `@`, what follows a host's `:` unless
    it is a port number. In a keyword string: the values of those keywords."""
    import re  # (neither is on the request path: only to show a location)
    from urllib.parse import unquote

    text = location.strip()
    scheme, sep, rest = text.partition("://")
    if not sep:
        scheme = _pattern("scheme").match(text)
        if scheme:  # `postgresql:/…` or `postgresql:x`: libpq will refuse it
            return f"{scheme.group(1)}:***"
        return re.sub(r"((?:%s)\s*=\s*)('(?:[^'\\]|\\.)*'?|\S*)" % "|".join(_SECRET_PARAMETERS),
                      r"\1***", text, flags=re.I)

    def parameter(m):
        secret = unquote(m.group(2)).strip().lower() in _SECRET_PARAMETERS
        return f"{m.group(1)}{m.group(2)}=***" if secret else m.group(0)

    rest = re.sub(r"([?&])([^=&]*)=([^&]*)", parameter, rest)
    at = rest.rfind("@")
    if at >= 0:
        name, colon, _ = rest[:at].partition(":")
        if colon:
            rest = f"{name}:***{rest[at:]}"
        return f"{scheme}://{rest}"
    end = min([i for i in (rest.find("/"), rest.find("?")) if i >= 0], default=len(rest))
    hosts = [h if re.fullmatch(r"(\[[^\]]*\]|[^:\[]*)(:\d*)?", h) else h.partition(":")[0] + ":***"
             for h in rest[:end].split(",")]
    return f"{scheme}://{','.join(hosts)}{rest[end:]}"
