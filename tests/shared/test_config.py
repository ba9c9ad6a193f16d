"""Settings: which database each service uses, refused URLs, and LIENTHONG_* environment parsing."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from services.settings import Settings
from shared.config import SERVICE_NAMES

PG = "postgresql+asyncpg://lt@db.internal:5432/lienthong"
PG_REGISTRY = "postgresql+asyncpg://lt@registry-db.internal:5432/registry"


# --- database_url_for ------------------------------------------------------------------------


def test_service_section_url_wins_over_shared_url() -> None:
    settings = Settings(database_url=PG, registry={"database_url": PG_REGISTRY})
    assert settings.database_url_for("registry") == PG_REGISTRY
    assert settings.database_url_for("exchange") == PG


def test_shared_url_is_used_by_every_service_without_its_own() -> None:
    settings = Settings(database_url=PG)
    assert {settings.database_url_for(name) for name in SERVICE_NAMES} == {PG}


def test_empty_section_url_falls_back_to_shared_url() -> None:
    settings = Settings(database_url=PG, exchange={"database_url": ""})
    assert settings.database_url_for("exchange") == PG


def test_default_is_one_sqlite_file_per_service_under_var_dir(tmp_path: Path) -> None:
    settings = Settings(var_dir=tmp_path)
    urls = {name: settings.database_url_for(name) for name in SERVICE_NAMES}
    assert urls == {name: f"sqlite+aiosqlite:///{tmp_path.as_posix()}/{name}.db" for name in SERVICE_NAMES}


def test_default_var_dir_is_relative() -> None:
    assert Settings().database_url_for("archive") == "sqlite+aiosqlite:///var/archive.db"


# --- refused URLs ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "mysql://lt@db/lienthong",
        "postgresql://lt@db/lienthong",  # the sync driver: the services need asyncpg
        "postgres://lt@db/lienthong",
        "sqlite:///var/registry.db",
    ],
)
def test_unknown_database_url_scheme_is_refused(url: str) -> None:
    with pytest.raises(ValidationError) as info:
        Settings(database_url=url)
    assert info.value.errors()[0]["loc"] == ("database_url",)


@pytest.mark.parametrize("url", ["sqlite+aiosqlite:///var/x.db", PG])
def test_known_database_url_schemes_are_accepted(url: str) -> None:
    assert Settings(database_url=url).database_url == url


def test_unknown_scheme_in_a_service_section_is_refused() -> None:
    with pytest.raises(ValidationError):
        Settings(registry={"database_url": "mysql://lt@db/registry"})


@pytest.mark.parametrize("url", ["redis://localhost:6379/0", "kafka://broker:9092", "http://rabbit:15672", ""])
def test_unknown_broker_url_scheme_is_refused(url: str) -> None:
    with pytest.raises(ValidationError) as info:
        Settings(broker_url=url)
    assert info.value.errors()[0]["loc"] == ("broker_url",)


@pytest.mark.parametrize(
    ("url", "uses_rabbitmq"),
    [("memory://", False), ("amqp://guest:guest@127.0.0.1:5672/", True), ("amqps://u:p@mq:5671/", True)],
)
def test_known_broker_urls_are_accepted(url: str, uses_rabbitmq: bool) -> None:
    settings = Settings(broker_url=url)
    assert settings.broker_url == url
    assert settings.uses_rabbitmq is uses_rabbitmq


# --- environment -----------------------------------------------------------------------------


def test_top_level_values_come_from_prefixed_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LIENTHONG_VAR_DIR", str(tmp_path))
    monkeypatch.setenv("LIENTHONG_DATABASE_URL", PG)
    monkeypatch.setenv("LIENTHONG_BROKER_URL", "amqp://guest:guest@mq:5672/")
    monkeypatch.setenv("LIENTHONG_AUTO_MIGRATE", "false")
    monkeypatch.setenv("LIENTHONG_RELAY_POLL_SECONDS", "0.5")
    settings = Settings()
    assert settings.var_dir == tmp_path
    assert settings.database_url == PG
    assert settings.uses_rabbitmq
    assert settings.auto_migrate is False
    assert settings.outbox.poll_seconds == 0.5  # the old name still works


def test_outbox_section_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIENTHONG_OUTBOX__POLL_SECONDS", "0.25")
    monkeypatch.setenv("LIENTHONG_OUTBOX__RETRY_MAX_SECONDS", "12")
    monkeypatch.setenv("LIENTHONG_RELAY_POLL_SECONDS", "9")  # the new name wins over the deprecated one
    settings = Settings()
    assert settings.outbox.poll_seconds == 0.25
    assert settings.outbox.retry_max_seconds == 12
    monkeypatch.setenv("LIENTHONG_OUTBOX__STUCK_AFTER_ATTEMPTS", "0")
    with pytest.raises(ValidationError):
        Settings()


def test_nested_sections_use_double_underscore(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIENTHONG_REGISTRY__DATABASE_URL", PG_REGISTRY)
    monkeypatch.setenv("LIENTHONG_REGISTRY__ADMIN_CLIENT_SECRET", "s3cret-value")
    monkeypatch.setenv("LIENTHONG_EXCHANGE__MAX_ATTACHMENT_BYTES", "1024")
    monkeypatch.setenv("LIENTHONG_GATEWAY__TOKEN_TTL_SECONDS", "60")
    monkeypatch.setenv("LIENTHONG_AUTH__PUBLIC_KEY_FILE", "/etc/lienthong/jwt-public.pem")
    settings = Settings()
    assert settings.database_url_for("registry") == PG_REGISTRY
    assert settings.registry.admin_client_secret is not None
    assert settings.registry.admin_client_secret.get_secret_value() == "s3cret-value"
    assert "s3cret-value" not in repr(settings)
    assert settings.exchange.max_attachment_bytes == 1024
    assert settings.gateway.token_ttl_seconds == 60
    assert settings.public_key_file == Path("/etc/lienthong/jwt-public.pem")


def test_nested_env_keeps_the_other_defaults_of_the_section(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIENTHONG_EXCHANGE__MAX_ATTACHMENT_BYTES", "2048")
    settings = Settings()
    assert settings.exchange.url == "http://127.0.0.1:8002"
    assert settings.exchange.blob_dir is None
    assert settings.blob_dir == Path("var") / "blobs"


def test_unprefixed_env_is_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "mysql://not-ours")
    monkeypatch.setenv("BROKER_URL", "redis://not-ours")
    settings = Settings()
    assert settings.database_url is None
    assert settings.broker_url == "memory://"


def test_explicit_arguments_win_over_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIENTHONG_DATABASE_URL", PG)
    assert Settings(database_url="sqlite+aiosqlite:///x.db").database_url == "sqlite+aiosqlite:///x.db"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("LIENTHONG_BROKER_URL", "redis://localhost/0"),
        ("LIENTHONG_DATABASE_URL", "mysql://db/lt"),
        ("LIENTHONG_EXCHANGE__MAX_ATTACHMENT_BYTES", "0"),
        ("LIENTHONG_EXCHANGE__MAX_ATTACHMENT_BYTES", "lots"),
        ("LIENTHONG_GATEWAY__TOKEN_TTL_SECONDS", "86401"),
        ("LIENTHONG_BROKER_PREFIX", "Upper Case!"),
    ],
)
def test_invalid_env_value_stops_start_up(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError):
        Settings()


def test_an_empty_database_url_means_unset(tmp_path) -> None:
    settings = Settings(var_dir=tmp_path, database_url="")
    assert settings.database_url is None
    assert settings.database_url_for("registry").startswith("sqlite+aiosqlite:///")


def test_every_setting_is_documented() -> None:
    """docs/development.md lists every environment variable a process reads."""
    from pydantic import BaseModel

    doc = (Path(__file__).resolve().parents[2] / "docs" / "development.md").read_text(encoding="utf-8")
    missing = []
    for name, field in Settings.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            for sub in annotation.model_fields:
                generic = f"LIENTHONG_<SERVICE>__{sub.upper()}" if sub in ("url", "database_url") else None
                variable = f"LIENTHONG_{name.upper()}__{sub.upper()}"
                if (
                    f"`{variable}`" not in doc
                    and f"/ `{variable}`" not in doc
                    and (generic is None or generic not in doc)
                ):
                    missing.append(variable)
        elif f"LIENTHONG_{name.upper()}" not in doc:
            missing.append(f"LIENTHONG_{name.upper()}")
    assert not missing, f"add these to the configuration table of docs/development.md: {missing}"
