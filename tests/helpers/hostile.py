"""Text that must never reach the store or a terminal, whichever way it comes in."""

BAD_TEXT = {
    "lone surrogate": "claude-\udcff",
    "C1 control (CSI)": "claude-\u009b31m",
    "bidi override": "claude-\u202egnp",
    "escape sequence": "\x1b]0;pwned\x07claude",
    "200,000 characters": "c" * 200_000,
}
