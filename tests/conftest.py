"""Fixtures shared by the scenario and CLI tests."""

import pytest
from scenario_support import save_tiny_model, use_fake_chip


@pytest.fixture()
def workdir(tmp_path, monkeypatch):
    """A fresh working directory holding a tiny model in trained_models/, with the stand-in chip."""
    use_fake_chip(monkeypatch)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "trained_models").mkdir()
    save_tiny_model(tmp_path / "trained_models")
    return tmp_path
