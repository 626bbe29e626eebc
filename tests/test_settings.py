"""The settings tree: one naming convention, each variable read where the docs say, and a
mistyped value reported in one line that names the variable (never with its secret)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import SecretStr

from peak.core.errors import ConfigError
from peak.core.settings import SECTIONS, EmailSettings, Settings, env_name

ROOT = Path(__file__).resolve().parent.parent
#: The services' own variables, read under their own names.
FOREIGN = {"REDIS_URL", "HUBSPOT_ACCESS_TOKEN", "AWS_REGION", "AWS_ENDPOINT_URL"}


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    for name in list(os.environ):
        if name.startswith(("PEAK_", "HUBSPOT_", "REDIS_", "AWS_")):
            monkeypatch.delenv(name)


def every_variable() -> dict[str, str]:
    """``{variable: section.field}`` over the whole tree."""
    names = {env_name(Settings, f): f for f in Settings.model_fields if f not in SECTIONS}
    for section, cls in SECTIONS.items():
        names |= {env_name(cls, f): f"{section}.{f}" for f in cls.model_fields}
    return names


def test_one_naming_convention():
    for variable, where in every_variable().items():
        section = where.split(".")[0].upper() if "." in where else ""
        prefix = f"PEAK_{section}_" if section else "PEAK_"
        assert variable in FOREIGN or variable.startswith(prefix), (variable, where)


def test_each_variable_reaches_its_field(monkeypatch):
    monkeypatch.setenv("PEAK_LAKE", "s3://bucket/lake")
    monkeypatch.setenv("PEAK_DUCKDB_MEMORY_LIMIT", "500MB")
    monkeypatch.setenv("PEAK_SPARK_SHUFFLE_PARTITIONS", "4")
    monkeypatch.setenv("PEAK_ATHENA_SCHEMA", "analytics")
    monkeypatch.setenv("REDIS_URL", "redis://cache:6379/1")
    monkeypatch.setenv("PEAK_LEADERBOARD_WEEKS", "8")
    monkeypatch.setenv("HUBSPOT_ACCESS_TOKEN", "pat-secret")
    monkeypatch.setenv("PEAK_EMAIL_BATCH", "20")
    monkeypatch.setenv("AWS_REGION", "eu-west-2")
    settings = Settings.load()
    assert settings.lake == "s3://bucket/lake"
    assert settings.duckdb.memory_limit == "500MB"
    assert settings.spark.shuffle_partitions == 4
    assert settings.athena.schema_name == "analytics"
    assert settings.redis.url == "redis://cache:6379/1"
    assert settings.leaderboard.weeks == 8
    assert settings.hubspot.token == "pat-secret"
    assert (settings.email.batch_size, settings.email.region) == (20, "eu-west-2")


def test_arguments_beat_the_environment(monkeypatch):
    monkeypatch.setenv("PEAK_LAKE", "/from/env")
    monkeypatch.setenv("PEAK_ENGINE", "spark")
    settings = Settings.load(lake="/from/argument")
    assert (settings.lake, settings.engine) == ("/from/argument", "spark")
    assert EmailSettings(sender="a@b.example").sender == "a@b.example"


@pytest.mark.parametrize(
    ("variable", "value", "why"),
    [
        ("PEAK_GYM_TIMEZONE", "Europe/Londn", "unknown time zone 'Europe/Londn'"),
        ("PEAK_DUCKDB_MEMORY_LIMIT", "lots", "a size with its unit, like 3GB"),
        ("PEAK_ENGINE", "presto", "'duckdb' or 'spark'"),
        ("PEAK_HUBSPOT_RATE_LIMIT", "0", "greater than or equal to 1"),
        ("PEAK_EMAIL_BATCH", "51", "less than or equal to 50"),
        ("PEAK_LEADERBOARD_WEEKS", "many", "valid integer"),
    ],
)
def test_a_mistyped_variable_is_one_line_naming_it(monkeypatch, variable, value, why):
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as raised:
        Settings.load()
    message = str(raised.value)
    assert message.startswith(f"{variable}={value!r}: ") and why in message
    assert "\n" not in message


def test_a_bad_secret_or_url_is_named_but_never_shown(monkeypatch):
    monkeypatch.setenv("PEAK_REDIS_TIMEOUT", "-1")
    monkeypatch.setenv("REDIS_URL", "redis://:hunter2@cache:6379/0")
    with pytest.raises(ConfigError, match=r"^PEAK_REDIS_TIMEOUT='-1'") as raised:
        Settings.load()
    assert "hunter2" not in str(raised.value)
    monkeypatch.delenv("PEAK_REDIS_TIMEOUT")
    with pytest.raises(ConfigError) as raised:
        Settings.load(hubspot={"access_token": SecretStr("pat-123"), "max_attempts": 0})
    assert str(raised.value).startswith("PEAK_HUBSPOT_MAX_ATTEMPTS=0: ")
    assert "pat-123" not in str(raised.value)
    with pytest.raises(ConfigError) as raised:
        Settings.load(redis={"url": 42.5})
    assert str(raised.value).startswith("REDIS_URL: ") and "42.5" not in str(raised.value)


def test_the_cli_prints_one_line_naming_the_variable(tmp_path):
    """Before the settings tree a mistyped zone printed pydantic's 47-line traceback."""
    env = {"PATH": os.environ["PATH"], "PEAK_GYM_TIMEZONE": "Europe/Londn"}
    run = subprocess.run(
        [sys.executable, "-m", "peak", "--lake", str(tmp_path / "lake"), "transform"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert run.returncode == 1
    assert run.stderr.strip().splitlines() == [
        "error: PEAK_GYM_TIMEZONE='Europe/Londn': unknown time zone 'Europe/Londn' "
        "(an IANA name: Europe/London)"
    ]


def test_every_documented_variable_exists():
    """.env.example names only variables the tree reads (the services' own aside)."""
    known = set(every_variable()) | {"AWS_DEFAULT_REGION", "AWS_PROFILE", "PEAK_DEBUG"}
    known |= {"PEAK_PROGRESS", "PEAK_TEST_CACHE", "PEAK_PYTHON39"}
    text = (ROOT / ".env.example").read_text()
    documented = {
        line.lstrip("# ").split("=", 1)[0].strip()
        for line in text.splitlines()
        if "=" in line and line.lstrip("# ").split("=", 1)[0].strip().isupper()
    }
    assert documented - known == set()
