"""Secrets from the OS keyring, when `keyring` and a real backend are installed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from goex_tools.secrets import KEYRING_SERVICE, KeyringSource, SecretNotAllowed, SecretStore

keyring = pytest.importorskip("keyring")
plaintext = pytest.importorskip("keyrings.alt.file")  # a real, file-backed keyring backend


@pytest.fixture
def file_keyring(tmp_path: Path) -> Iterator[Any]:
    backend = plaintext.PlaintextKeyring()
    backend.file_path = str(tmp_path / "keyring.cfg")
    previous = keyring.get_keyring()
    keyring.set_keyring(backend)
    yield backend
    keyring.set_keyring(previous)


def test_a_secret_and_its_hosts_come_from_the_keyring(file_keyring: Any) -> None:
    keyring.set_password(KEYRING_SERVICE, "deploy", "kr-0123456789abcdef")
    keyring.set_password(KEYRING_SERVICE, "deploy.hosts", "deploy.example.com, *.ci.example")
    store = SecretStore([KeyringSource()])
    assert store.value_for("deploy", "deploy.example.com") == "kr-0123456789abcdef"
    assert store.value_for("deploy", "runner.ci.example") == "kr-0123456789abcdef"
    with pytest.raises(SecretNotAllowed):
        store.value_for("deploy", "example.com")
    assert KeyringSource().lookup("absent") is None


def test_no_usable_backend_means_no_keyring_source(file_keyring: Any) -> None:
    from keyring.backends.fail import Keyring as FailKeyring

    keyring.set_password(KEYRING_SERVICE, "deploy", "kr-0123456789abcdef")
    keyring.set_keyring(FailKeyring())  # what a headless Linux box has
    assert KeyringSource().lookup("deploy") is None
