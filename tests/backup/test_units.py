"""The backup core's pure parts: key fingerprints, age encryption of files, the retention policy."""

from __future__ import annotations

import os
import stat
from datetime import UTC, datetime, timedelta

import pytest

from n8nctl.backup import crypto
from n8nctl.backup.manifest import KeyFingerprint
from n8nctl.backup.retention import Policy, keep
from n8nctl.errors import ConfigError


def test_a_fingerprint_matches_its_key_only_and_never_contains_it():
    key = "n8n-encryption-key-" + os.urandom(8).hex()
    first, second = KeyFingerprint.of(key), KeyFingerprint.of(key)
    assert first.matches(key) and not first.matches(key + "x")
    assert first.hmac_sha256 != second.hmac_sha256, "salted: two backups of one key do not correlate"
    assert key not in first.model_dump_json()


@pytest.fixture
def key() -> str:
    from pyrage import x25519

    return str(x25519.Identity.generate())


def test_files_encrypt_and_decrypt_privately_and_the_clear_text_goes(tmp_path, key):
    plain = tmp_path / "db"
    plain.write_bytes(os.urandom(300_000))
    original = plain.read_bytes()
    sealed = crypto.encrypt_file(plain, key)
    assert not plain.exists() and sealed.name == "db.age"
    assert stat.S_IMODE(sealed.stat().st_mode) == 0o600
    assert original[:4096] not in sealed.read_bytes()
    crypto.decrypt_file(sealed, tmp_path / "back", key)
    assert (tmp_path / "back").read_bytes() == original


def test_another_key_or_a_flipped_bit_fails_and_leaves_nothing(tmp_path, key):
    from pyrage import x25519

    (tmp_path / "db").write_bytes(os.urandom(200_000))
    sealed = crypto.encrypt_file(tmp_path / "db", key)
    with pytest.raises(crypto.DecryptionError, match="not the key it was encrypted with") as error:
        crypto.decrypt_file(sealed, tmp_path / "out", str(x25519.Identity.generate()))
    assert error.value.exit_code == 7 and not (tmp_path / "out").exists()
    data = bytearray(sealed.read_bytes())
    data[150_000] ^= 1
    sealed.write_bytes(bytes(data))
    with pytest.raises(crypto.DecryptionError, match="damaged"):
        crypto.decrypt_file(sealed, tmp_path / "out", key)
    assert not (tmp_path / "out").exists(), "no half-decrypted file"


def test_a_malformed_key_is_named_but_never_echoed():
    with pytest.raises(ConfigError) as error:
        crypto.identity("AGE-SECRET-KEY-1NOTAREALKEYLEAKME")
    assert "LEAKME" not in error.value.line() and "N8NCTL_BACKUP_ENCRYPTION_KEY" in error.value.line()


def test_retention_keeps_the_newest_of_each_day_week_and_month():
    now = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)
    nightly = [now - timedelta(days=d) for d in range(120)]
    extra = now - timedelta(hours=25)  # an earlier second backup on the previous day
    kept = keep([*nightly, extra], Policy(daily=7, weekly=4, monthly=3))
    assert extra not in kept, "one a day: the newest of that day"
    days = sorted(m.date().isoformat() for m in kept)
    daily = [f"2026-11-{d}" for d in range(25, 31)] + ["2026-12-01"]
    # weeks (ISO, Monday first): Dec 1's week, then the Sundays Nov 29 (daily already), 22, 15;
    # months: Dec 1, Nov 30 (daily already), Oct 31
    assert days == sorted(["2026-10-31", "2026-11-15", "2026-11-22", *daily])


def test_retention_always_keeps_the_newest_backup():
    moments = [datetime(2026, 1, 1, tzinfo=UTC), datetime(2025, 1, 1, tzinfo=UTC)]
    assert keep(moments, Policy(0, 0, 0)) == {moments[0]}
    assert keep([], Policy(7, 4, 6)) == set()
