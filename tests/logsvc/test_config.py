"""`lokit serve log` settings: flags > config file (TOML/YAML) > environment > defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from lokit.logsvc.config import ConfigError, ServerConfig, load_file, merge


def test_defaults() -> None:
    c = merge({}, environ={})
    assert c == ServerConfig()
    assert c.data == "data/log" and c.fsync == "always"
    log = c.log_config()
    assert log.fsync_policy.mode == "always" and log.retention_bytes is None


def test_precedence(tmp_path: Path) -> None:
    f = tmp_path / "log.yaml"
    f.write_text("fsync: interval:200\nretention-age: 7d\ndata: from-file\n")
    env = {"LOKIT_LOG_FSYNC": "never", "LOKIT_LOG_DATA": "from-env", "LOKIT_LOG_GRACE": "3"}
    c = merge({"data": "from-flag"}, f, environ=env)
    assert c.data == "from-flag"  # flag beats file and environment
    assert c.fsync == "interval:200"  # file beats environment
    assert c.grace == 3.0  # environment beats the default
    assert c.retention_age == 7 * 86400


def test_toml_with_a_log_table_and_sizes(tmp_path: Path) -> None:
    f = tmp_path / "lokit.toml"
    f.write_text(
        '[log]\ngrpc = ["unix:a.sock", "127.0.0.1:8400"]\nsegment_max_bytes = "1MiB"\n'
        'max-record-bytes = 4096\nretention-bytes = "1GB"\n'
    )
    c = merge({}, f, environ={})
    assert c.grpc == ("unix:a.sock", "127.0.0.1:8400")
    log = c.log_config()
    assert log.max_store_bytes == 1 << 20
    assert log.max_record_bytes == 4096
    assert log.retention_bytes == 10**9


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("fsynk = 'always'", "unknown setting 'fsynk'"),
        ("fsync = 'sometimes'", "invalid fsync policy 'sometimes'"),
        ("segment-max-bytes = 'lots'", "segment-max-bytes must be a size"),
        ("retention-age = 'forever'", "retention-age must be a duration"),
        ("grpc = 5", "grpc must be an address or a list of addresses"),
        ("log-level = 'loud'", "log-level must be one of"),
        ("= broken", "is not valid TOML or YAML"),
    ],
)
def test_bad_files_are_one_sentence(tmp_path: Path, text: str, message: str) -> None:
    f = tmp_path / "bad.toml"
    f.write_text(text + "\n")
    with pytest.raises(ConfigError) as e:
        merge({}, f, environ={})
    assert message in str(e.value) and "\n" not in str(e.value)


def test_bad_flag_and_environment_values() -> None:
    with pytest.raises(ConfigError, match="invalid fsync policy"):
        merge({"fsync": "sometimes"}, environ={})
    with pytest.raises(ConfigError, match="environment: unknown setting 'colour'"):
        merge({}, environ={"LOKIT_LOG_COLOUR": "red"})
    with pytest.raises(ConfigError, match="max_store_bytes must be at least"):
        merge({"segment_max_bytes": "4"}, environ={})


def test_the_client_address_variable_is_not_a_server_setting() -> None:
    """LOKIT_LOG_ADDR is the client commands' address; the server ignores it."""
    assert merge({}, environ={"LOKIT_LOG_ADDR": "unix:elsewhere.sock"}) == ServerConfig()
    env = {"LOKIT_LOG_ADDR": "unix:elsewhere.sock", "LOKIT_LOG_GRACE": "2"}
    assert merge({}, environ=env).grace == 2.0


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_file(tmp_path / "nope.toml")
