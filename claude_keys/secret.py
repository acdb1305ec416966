"""The secret format: generation, checksum, digest and display hint.

A secret is `cc_` + 32 random base62 characters (190 bits from `secrets`) + a
6-character base62 CRC-32 of those 32. CRC-32 catches every single-character
change (a burst of at most 8 bits), and the fixed length catches truncation, so a
mistyped key is rejected before the store is touched. Only the SHA-256 digest of a
secret is ever stored.
"""
from __future__ import annotations

from binascii import crc32
from functools import lru_cache

try:  # the interpreter's own SHA-256: hashlib would load OpenSSL (~3 ms) on the hot path
    from _sha2 import sha256 as _sha256  # Python >= 3.12
except ImportError:
    try:
        from _sha256 import sha256 as _sha256  # Python <= 3.11
    except ImportError:
        from hashlib import sha256 as _sha256

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
PREFIX = "cc_"
RANDOM_LEN = 32
CHECK_LEN = 6
SECRET_LEN = len(PREFIX) + RANDOM_LEN + CHECK_LEN
_ALPHABET_SET = frozenset(ALPHABET)
MAX_TOKEN_LEN = 512  # longer than any token we would store; refuse without hashing


def _checksum(body: str) -> str:
    n = crc32(body.encode("ascii"))
    out = []
    for _ in range(CHECK_LEN):
        n, r = divmod(n, 62)
        out.append(ALPHABET[r])
    return "".join(reversed(out))


def new_secret() -> str:
    import secrets

    body = "".join(secrets.choice(ALPHABET) for _ in range(RANDOM_LEN))
    return PREFIX + body + _checksum(body)


def is_own_format(token: str) -> bool:
    """Shaped like one of our secrets (right prefix, length and alphabet)."""
    return (
        len(token) == SECRET_LEN
        and token.startswith(PREFIX)
        and _ALPHABET_SET.issuperset(token[len(PREFIX):])
    )


def checksum_ok(token: str) -> bool:
    body = token[len(PREFIX) : len(PREFIX) + RANDOM_LEN]
    return token[-CHECK_LEN:] == _checksum(body)


def is_plausible_token(token: str) -> bool:
    """Worth a lookup: a well-formed secret of ours, or an adopted token of another shape.

    A token shaped like ours but with a bad checksum is a typo, never looked up.
    """
    if not token or len(token) > MAX_TOKEN_LEN:
        return False
    if token.startswith(PREFIX) and len(token) == SECRET_LEN:
        return is_own_format(token) and checksum_ok(token)
    return token.isprintable() and not any(c.isspace() for c in token)


def digest(token: str) -> bytes:
    return _sha256(token.encode("utf-8", "surrogatepass")).digest()


@lru_cache(maxsize=4096)
def lookup_digest(token: str) -> bytes | None:
    """The digest to look a presented token up by, or None when it is not worth a lookup.

    Memoized: a service sees the same few keys over and over (the tokens are already in
    its memory, in the requests that carry them). Bounded, so junk cannot grow it.
    """
    return digest(token) if is_plausible_token(token) else None


def hint(token: str) -> str:
    """`cc_Ab3x…wxYz`: enough to recognise a key, far too little to use it (28 random
    characters stay hidden). An adopted token may be short and guessable beside its
    digest, so it shows at most its last 4 characters, and only when it is long."""
    if is_own_format(token):
        return f"{token[:7]}…{token[-4:]}"
    return f"…{token[-4:]}" if len(token) >= 24 else "…"
