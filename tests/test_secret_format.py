"""The secret format: shape, randomness, checksum, digest and hint."""
import math
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from claude_keys import secret as fmt

pytestmark = pytest.mark.one_backend


def test_shape_and_entropy():
    token = fmt.new_secret()
    assert re.fullmatch(r"cc_[A-Za-z0-9]{38}", token)
    # 32 random base62 characters: at least 160 bits.
    assert fmt.RANDOM_LEN * math.log2(62) >= 160
    assert fmt.checksum_ok(token) and fmt.is_plausible_token(token)


def test_secrets_are_unique():
    assert len({fmt.new_secret() for _ in range(2000)}) == 2000


def test_hint_shows_start_and_last_four():
    token = fmt.new_secret()
    assert fmt.hint(token) == f"{token[:7]}…{token[-4:]}"


def test_digest_is_sha256_not_the_secret():
    token = fmt.new_secret()
    assert len(fmt.digest(token)) == 32 and token.encode() not in fmt.digest(token)


@given(st.data())
def test_any_single_character_change_is_rejected(data):
    token = fmt.new_secret()
    i = data.draw(st.integers(min_value=0, max_value=len(token) - 1))
    c = data.draw(st.characters(codec="utf-8").filter(lambda ch: ch != token[i]))
    changed = token[:i] + c + token[i + 1:]
    assert not (fmt.is_own_format(changed) and fmt.checksum_ok(changed))
    if changed.startswith(fmt.PREFIX):  # still our shape: refused before any lookup
        assert not fmt.is_plausible_token(changed)


@given(st.data())
def test_truncation_is_rejected(data):
    token = fmt.new_secret()
    cut = data.draw(st.integers(min_value=1, max_value=len(token) - 1))
    assert not (fmt.is_own_format(token[:cut]) and fmt.checksum_ok(token[:cut]))
