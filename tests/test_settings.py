"""The one settings model: sources and their order, strict values, no secret ever shown."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from sjti import ConfigurationError, Settings
from sjti.cli._config_cmds import reference
from sjti.settings import Secret, describe

DOCS = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"
KEK = "k1:" + "A" * 43


def test_defaults_are_what_the_reference_documents() -> None:
    settings = Settings()
    for spec in describe():
        assert getattr(settings, spec.name) == spec.default, spec.name
    assert (settings.database_url, settings.issuer, settings.kek) == (
        "sqlite:///sjti.db",
        "http://127.0.0.1:8000",
        None,
    )


def test_file_then_environment_then_arguments(tmp_path: Path) -> None:
    """Each source overrides the one before it, field by field."""
    toml = tmp_path / "sjti.toml"
    toml.write_text('issuer = "https://file"\naudience = "file-aud"\naccess_ttl = 60\n')
    environ = {"SJTI_AUDIENCE": "env-aud", "SJTI_ACCESS_TTL": "120"}
    settings = Settings.load(toml, environ=environ, access_ttl=30)
    assert (settings.issuer, settings.audience, settings.access_ttl) == (
        "https://file",
        "env-aud",
        30,
    )


def test_sjti_config_names_the_file_and_sjti_toml_is_found_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    named = tmp_path / "elsewhere.toml"
    named.write_text('issuer = "https://named"\n')
    (tmp_path / "sjti.toml").write_text('issuer = "https://cwd"\n')
    monkeypatch.chdir(tmp_path)
    assert Settings.load(environ={}).issuer == "https://cwd"
    assert Settings.load(environ={"SJTI_CONFIG": str(named)}).issuer == "https://named"


def test_a_missing_named_file_is_an_error_not_a_silent_default(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"cannot read .*nope\.toml"):
        Settings.load(environ={"SJTI_CONFIG": str(tmp_path / "nope.toml")})


def test_unknown_names_in_a_file_are_refused_with_a_suggestion(tmp_path: Path) -> None:
    toml = tmp_path / "sjti.toml"
    toml.write_text('isuer = "https://typo"\n')
    with pytest.raises(
        ConfigurationError, match="unknown setting 'isuer' \\(did you mean 'issuer'"
    ):
        Settings.load(toml, environ={})


def test_invalid_toml_is_a_configuration_error(tmp_path: Path) -> None:
    toml = tmp_path / "sjti.toml"
    toml.write_text("issuer = \n")
    with pytest.raises(ConfigurationError, match="not valid TOML"):
        Settings.load(toml, environ={})


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("SJTI_ACCESS_TTL", "soon", "SJTI_ACCESS_TTL \\(environment\\): invalid literal"),
        ("SJTI_ACCESS_TTL", "0", "SJTI_ACCESS_TTL \\(environment\\): must be greater than 0"),
        ("SJTI_ACCESS_TTL", "86401", "must be at most 86400"),
        ("SJTI_PORT", "70000", "SJTI_PORT .*must be at most 65535"),
        ("SJTI_POLL_INTERVAL", "nan", "must be a finite number"),
        ("SJTI_ENV", "staging", "must be one of 'development', 'production'"),
        ("SJTI_SESSION_GRANULARITY", "tenant", "must be one of 'device', 'user', 'session'"),
        ("SJTI_LEEWAY", "301", "SJTI_LEEWAY .*at most 300"),
    ],
)
def test_bad_environment_values_name_the_variable_and_the_rule(
    variable: str, value: str, message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message):
        Settings.load(environ={variable: value})


def test_toml_values_keep_their_types(tmp_path: Path) -> None:
    """TOML says what it means: a string is not silently read as a number."""
    toml = tmp_path / "sjti.toml"
    toml.write_text('access_ttl = "60"\n')
    with pytest.raises(ConfigurationError, match=r"SJTI_ACCESS_TTL .*must be an integer"):
        Settings.load(toml, environ={})
    toml.write_text('poll_interval = 2\nredis_url = "redis://127.0.0.1:6379/0"\n')
    settings = Settings.load(toml, environ={})
    assert (settings.poll_interval, settings.redis_url) == (2.0, "redis://127.0.0.1:6379/0")


def test_an_empty_variable_unsets_an_optional_setting_but_never_a_secret() -> None:
    """An empty secret is a template's unset variable: refused, not read as "none"."""
    assert Settings.load(environ={"SJTI_REDIS_URL": ""}).redis_url is None
    with pytest.raises(ConfigurationError, match="SJTI_KEK is set but empty"):
        Settings.load(environ={"SJTI_KEK": ""})
    with pytest.raises(ConfigurationError, match="at least 16 characters"):
        Settings.load(
            environ={
                "SJTI_INTROSPECTION_CLIENT_ID": "rs",
                "SJTI_INTROSPECTION_CLIENT_SECRET": "",
            }
        )


def test_secrets_never_appear_in_repr_or_errors() -> None:
    settings = Settings.load(environ={"SJTI_KEK": KEK})
    assert isinstance(settings.kek, Secret)
    assert settings.kek.get_secret_value() == KEK
    assert KEK not in repr(settings)
    short = "sekrit-but-short"[:10]
    with pytest.raises(ConfigurationError) as caught:
        Settings.load(
            environ={
                "SJTI_INTROSPECTION_CLIENT_ID": "rs",
                "SJTI_INTROSPECTION_CLIENT_SECRET": short,
            }
        )
    assert "at least 16 characters" in str(caught.value)
    assert short not in str(caught.value)
    with pytest.raises(ConfigurationError) as wrong_type:
        Settings(kek=42)  # type: ignore[arg-type]
    assert "42" not in str(wrong_type.value)
    assert "(hidden)" in str(wrong_type.value)


def test_production_needs_a_kek() -> None:
    with pytest.raises(ConfigurationError, match="SJTI_ENV=production needs SJTI_KEK"):
        Settings.load(environ={"SJTI_ENV": "production"})
    assert Settings.load(environ={"SJTI_ENV": "production", "SJTI_KEK": KEK}).env == "production"


def test_removed_admin_usernames_is_refused_from_any_source(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="sjti users create NAME --admin"):
        Settings.load(environ={"SJTI_ADMIN_USERNAMES": "admin"})
    toml = tmp_path / "sjti.toml"
    toml.write_text('admin_usernames = "admin"\n')
    with pytest.raises(ConfigurationError, match="SJTI_ADMIN_USERNAMES is gone"):
        Settings.load(toml, environ={})


def test_from_mapping_takes_a_frameworks_dict_in_either_case() -> None:
    """Django's ``SJTI = {"ISSUER": ...}``: same names, upper case welcome."""
    settings = Settings.from_mapping({"ISSUER": "https://dj", "access_ttl": 30})
    assert (settings.issuer, settings.access_ttl) == ("https://dj", 30)
    with pytest.raises(ConfigurationError, match="SJTI: unknown setting 'ISUER'"):
        Settings.from_mapping({"ISUER": "x"}, source="SJTI")
    with pytest.raises(ConfigurationError, match="SJTI_ACCESS_TTL \\(SJTI\\): must be an integer"):
        Settings.from_mapping({"ACCESS_TTL": "30"}, source="SJTI")


def test_replace_checks_like_any_other_source() -> None:
    settings = Settings().replace(audience="api")
    assert settings.audience == "api"
    with pytest.raises(ConfigurationError, match="greater than 0"):
        settings.replace(access_ttl=0)
    with pytest.raises(ConfigurationError, match="unknown setting 'audiences'"):
        settings.replace(audiences="x")


def test_docs_list_every_setting_exactly_as_sjti_config_docs_prints_it() -> None:
    """docs/configuration.md holds the generated reference: no field undocumented."""
    text = DOCS.read_text(encoding="utf-8")
    assert reference() in text
    documented = set(re.findall(r"^\| `([a-z_]+)` \| `SJTI_", text, flags=re.MULTILINE))
    assert documented == {spec.name for spec in describe()}


def test_repr_hides_passwords_inside_urls() -> None:
    settings = Settings(
        database_url="postgresql+psycopg://app:hunter2@db.internal/sjti",
        redis_url="redis://:s3cret@cache:6379/0",
    )
    text = repr(settings)
    assert "hunter2" not in text
    assert "s3cret" not in text
    assert "postgresql+psycopg://app:***@db.internal/sjti" in text
    assert settings.database_url.endswith("app:hunter2@db.internal/sjti")  # the value stays
