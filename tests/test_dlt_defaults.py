"""Unit tests of the connector's dlt defaults: they apply where the user set nothing, and yield to
whatever the user sets."""

import dlt
import pytest
from deck.resources import dlt_defaults
from deck.resources.scope import SyncScope, sync_scope
from dlt.common.configuration.container import Container
from dlt.common.configuration.specs.pluggable_run_context import PluggableRunContext

pytestmark = pytest.mark.unit  # pure logic: `pytest -m unit` runs these alone

COMPRESSION = "sources.deck.data_writer.disable_compression"


def provider() -> dlt_defaults.ConnectorDefaults:
    dlt_defaults.register()
    found = Container()[PluggableRunContext].providers[dlt_defaults.ConnectorDefaults.NAME]
    assert isinstance(found, dlt_defaults.ConnectorDefaults)
    return found


def test_extract_files_are_uncompressed_where_the_user_set_nothing(monkeypatch):
    monkeypatch.delenv("SOURCES__DECK__DATA_WRITER__DISABLE_COMPRESSION", raising=False)
    provider()
    assert dlt.config[COMPRESSION] is True


def test_a_setting_of_the_user_wins_over_the_connector_default(monkeypatch):
    provider()
    monkeypatch.setenv("SOURCES__DECK__DATA_WRITER__DISABLE_COMPRESSION", "false")
    assert dlt.config[COMPRESSION] is False


def test_registering_twice_keeps_one_provider():
    dlt_defaults.register()
    dlt_defaults.register()
    names = [p.name for p in Container()[PluggableRunContext].providers.providers]
    assert names.count(dlt_defaults.ConnectorDefaults.NAME) == 1


def duckdb_global_config() -> object:
    sections = ("destination", "duckdb", "credentials")
    value, _ = provider().get_value("global_config", dict, None, *sections)
    return value


def test_duckdb_keeps_its_own_defaults_outside_a_sync():
    assert duckdb_global_config() is None


def test_duckdb_memory_is_capped_during_a_sync():
    with sync_scope(SyncScope()):
        assert duckdb_global_config() == {"memory_limit": "128MB"}


def test_a_duckdb_setting_of_the_user_wins_during_a_sync(monkeypatch):
    monkeypatch.setenv("DESTINATION__DUCKDB__CREDENTIALS__GLOBAL_CONFIG", '{"threads": 4}')
    provider()
    with sync_scope(SyncScope()):
        assert dlt.config["destination.duckdb.credentials.global_config"] == {"threads": 4}


def load_workers() -> object:
    value, _ = provider().get_value("workers", int, None, "load")
    return value


def activate(tmp_path, destination) -> None:
    dlt.pipeline(pipeline_name="defaults", pipelines_dir=str(tmp_path), destination=destination)


def test_a_sync_into_duckdb_loads_one_file_at_a_time(tmp_path):
    activate(tmp_path, dlt.destinations.duckdb(str(tmp_path / "w.duckdb")))
    with sync_scope(SyncScope()):
        assert load_workers() == 1
    assert load_workers() is None


def test_a_sync_into_another_warehouse_keeps_dlts_parallel_load_jobs(tmp_path):
    activate(tmp_path, dlt.destinations.postgres())
    with sync_scope(SyncScope()):
        assert load_workers() is None


def test_the_defaults_are_config_never_secrets():
    provider()
    assert dlt.secrets.get(COMPRESSION) is None
    assert dlt.config.writable_provider.name != dlt_defaults.ConnectorDefaults.NAME


def test_a_duckdb_given_no_file_resolves_during_a_sync(monkeypatch):
    """The CLI's DuckDB file is dlt's default when no setting names one; dlt then asks every
    provider for the whole `credentials` section, which a provider that holds no secrets must
    leave unanswered (dlt refuses a secret from it), while it still caps DuckDB's memory."""
    monkeypatch.delenv("DESTINATION__DUCKDB__CREDENTIALS", raising=False)
    provider()
    duckdb = dlt.destinations.duckdb()
    with sync_scope(SyncScope()):
        config = duckdb.configuration(None, accept_partial=True)  # no pipeline: no dataset

    assert config.credentials.global_config == {"memory_limit": "128MB"}
