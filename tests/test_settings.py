from __future__ import annotations

import pytest

from callcard.settings import Settings, SettingsError


def test_settings_read_prefixed_environment() -> None:
    s = Settings.from_env({"CALLCARD_AMI_PORT": "6038", "CALLCARD_SECURE_COOKIES": "yes",
                           "CALLCARD_BUS_URL": "redis://r:6379/1", "OTHER": "x"})
    assert (s.ami_port, s.secure_cookies, s.bus_url) == (6038, True, "redis://r:6379/1")
    assert s.database_url == Settings().database_url


def test_overrides_win_over_environment() -> None:
    s = Settings.from_env({"CALLCARD_HTTP_PORT": "9000"}, http_port=9100)
    assert s.http_port == 9100


def test_bad_value_names_the_variable() -> None:
    with pytest.raises(SettingsError, match="CALLCARD_AMI_PORT='fifty' is not a valid int"):
        Settings.from_env({"CALLCARD_AMI_PORT": "fifty"})
