from pathlib import Path

import pytest

from broker.config import load_settings
from broker.errors import ConfigError


def test_environment_beats_file_and_command_line_beats_environment(tmp_path, monkeypatch):
    config = tmp_path / "handoff.yaml"
    config.write_text("data_dir: /srv/from-file\napi:\n  port: 9000\nlog:\n  sync: full\n")
    monkeypatch.setenv("HANDOFF_API__PORT", "9100")

    settings = load_settings(config)
    assert settings.api.port == 9100            # environment over file
    assert settings.log.sync == "full"          # file value kept where env is silent
    assert settings.data_dir == Path("/srv/from-file")

    settings = load_settings(config, data_dir=Path("/srv/cli"))
    assert settings.data_dir == Path("/srv/cli")


def test_config_file_named_by_environment(tmp_path, monkeypatch):
    config = tmp_path / "c.yaml"
    config.write_text("router:\n  batch_size: 50\n")
    monkeypatch.setenv("HANDOFF_CONFIG", str(config))
    assert load_settings().router.batch_size == 50


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("api:\n  port: eighty\n", "api.port"),
        ("api: [1, 2\n", ":2: invalid YAML"),
        ("- just\n- a list\n", "must be a mapping"),
        ("unknown_setting: 1\n", "unknown_setting"),
    ],
)
def test_bad_config_file_names_file_and_setting(tmp_path, text, expected):
    config = tmp_path / "bad.yaml"
    config.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_settings(config)
    assert str(config) in str(info.value)
    assert expected in str(info.value)
