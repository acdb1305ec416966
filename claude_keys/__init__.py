"""claude_keys: API keys, permissions and usage for a self-hosted Claude API service.

The service imports `KeyStore` (check a request, record its usage); scripts from the
seeds use `AuthManager` and `PermissionManager`. Names are loaded on first use so
`import claude_keys` stays cheap on the request path.
"""
from __future__ import annotations

__version__ = "0.1.0"

_LAZY = {
    "KeyStore": "api",
    "AsyncKeyStore": "api",
    "AuthManager": "api",
    "PermissionManager": "api",
    "Decision": "gate",
    "ClaudeKeysError": "errors",
    "InvalidInput": "errors",
    "TooLarge": "errors",
    "KeyNotFound": "errors",
    "RequestIdConflict": "errors",
    "AmbiguousKey": "errors",
    "StoreError": "errors",
    "KeyringFailure": "errors",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'claude_keys' has no attribute {name!r}")
