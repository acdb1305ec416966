"""claude-api's tests, a package so that they and their helpers (tests.helpers) import
by name from the checkout: run pytest from the repository's root."""
