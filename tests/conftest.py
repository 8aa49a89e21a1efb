"""Shared fixtures and helpers for the uws-adapter tests."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Iterator, List, Optional, Tuple, Union

import pytest
from hypothesis import settings
from lxml import etree
from servers import HttpServer, listener

from uws_adapter import RestClient, UwsClient

# No secret of the tests in a log record, a left-behind file or a test's output (tests/secret_scan.py).
pytest_plugins = ["secret_scan", "xdist_groups"]

DATA = Path(__file__).parent / "data"
#: Excerpts of the carrier's documentation the fixtures are checked against (copied into the checkout,
#: so nothing is read from outside it).
CARRIER_DOCS = DATA / "thingspace-docs"

Shape = Tuple[str, str, List["Shape"]]

# Hypothesis profiles. "ci" runs every property test at its full example count (what `examples`
# is given); "dev" runs a tenth of it, for a quick run while working; "deep" five times it, for a
# fuzzing session before a release (its examples differ from ci's: more of them, another seed
# stream). HYPOTHESIS_PROFILE picks one and "ci" is the default; under CI=true it is never "dev".
# ci and dev are derandomized: a failure found once is found again on every run and machine; deep
# prints the blob that reproduces what it finds (@reproduce_failure) and keeps no example database.
PROFILES = {"ci": 1.0, "dev": 0.1, "deep": 5.0}
settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
settings.register_profile("dev", derandomize=True, deadline=None, print_blob=True)
settings.register_profile("deep", derandomize=False, database=None, deadline=None, print_blob=True)
PROFILE = os.environ.get("HYPOTHESIS_PROFILE") or "ci"
if PROFILE not in PROFILES:
    raise pytest.UsageError(f"HYPOTHESIS_PROFILE={PROFILE!r}: unknown profile; use one of {', '.join(PROFILES)}")
if os.environ.get("CI", "").strip().lower() in ("1", "true", "yes") and PROFILE == "dev":
    PROFILE = "ci"
settings.load_profile(PROFILE)


def examples(full: int) -> int:
    """The example count for a property test whose full count is ``full``, in the loaded profile."""
    return max(10, int(full * PROFILES[PROFILE]))


#: The slow tests (marker ``slow``; ``-m "not slow"`` is the fast lane): each took a second or more
#: on the shared 2-core machine (``--durations``), mostly because it starts service processes, loads
#: a receiver or PostgreSQL with thousands of rows, kills processes, runs a third-party client,
#: sweeps every codec or fuzzes thousands of documents. A module path marks the whole module,
#: ``path::name`` one test function (all its parameters), ``path::name[prefix`` the parameters whose
#: id starts so. An entry that matches no test fails the run, so a rename cannot silently move a slow
#: test into the fast lane.
SLOW = (
    "bridge/test_bridge_encodings.py::test_every_declared_codec_name_gets_400_with_a_reason_on_the_bridge",
    "bridge/test_bridge_hardening.py::test_a_thousand_wrong_passwords_from_one_address_never_stop_the_legacy_system_at_another",
    "bridge/test_bridge_hardening.py::test_nothing_in_the_store_or_answers_holds_a_legacy_password",
    "bridge/test_bridge_hardening.py::test_the_bridge_command_checks_the_host",
    "bridge/test_bridge_hardening.py::test_unlock_says_nothing_is_locked_in_the_store",
    "bridge/test_bridge_postgres.py::test_a_bridge_pair_relays_each_callback_once",
    "bridge/test_relay.py::test_a_relay_to_a_trickling_listener_ends_at_its_deadline",
    "bridge/test_relay.py::test_a_trickling_listener_does_not_hold_back_relays_to_another",
    "bridge/test_relay.py::test_after_a_kill_9_only_the_runs_in_flight_wait_for_their_lease",
    "bridge/test_relay.py::test_two_bridges_on_one_store_with_a_short_lease_and_slow_answers_relay_each_callback_once",
    "cli/test_cli.py::test_an_account_selection_needs_yes",
    "cli/test_cli.py::test_connection_refused_and_a_wrong_endpoint_are_said_in_words",
    "cli/test_cli.py::test_parse_repair_and_conversion_from_stdin",
    "cli/test_cli.py::test_the_bridge_command_serves_legacy_soap_over_rest_until_interrupted",
    "cli/test_cli.py::test_the_emulator_command_serves_until_interrupted",
    "cli/test_emulator_listener.py",
    "cli/test_help.py::test_a_command_imports_only_its_own_module",
    "cli/test_listeners.py::test_register_list_and_remove",
    "cli/test_options.py::test_the_confirmation_prompt_takes_y",
    "cli/test_preview.py::test_the_confirmation_shows_the_count",
    "cli/test_service_lifecycle.py",
    "cli/test_startup.py::test_a_port_in_use_is_one_line_exit_1_and_leaves_no_database",
    "cli/test_startup.py::test_an_existing_database_is_kept_when_the_start_fails",
    "cli/test_tracking.py::test_an_account_request_is_never_complete_and_settles_only_after_its_last_callback",
    "cli/test_tracking.py::test_demo_end_to_end",
    "cli/test_tracking.py::test_status_callbacks_and_wait_commands",
    "cli/test_tracking.py::test_wait_on_an_open_ended_request_exits_3_when_settled",
    "cli/test_tracking.py::test_wait_times_out_with_a_clear_error",
    "cli/test_trial_defects.py::test_an_unknown_outcome_prints_the_recorded_id_status_accepts",
    "cli/test_trial_defects.py::test_the_bridge_replaces_another_listener_only_with_replace",
    "emulator/test_emulator_seeding.py::test_the_emulator_command_seeds_lines_that_queries_match",
    "interop/test_dotnet.py",
    "interop/test_soap_stacks.py",
    "interop/test_vendor_rest_sdk.py",
    "model/test_callbacks.py::test_fuzz_both_parsers_raise_only_parse_errors",
    "model/test_callbacks.py::test_json_form_matches_its_schema_and_round_trips",
    "model/test_callbacks.py::test_rest_round_trip",
    "model/test_callbacks.py::test_soap_round_trip",
    "provisioning/test_budget.py::test_the_cli_refuses_over_the_budget_and_force_sends",
    "provisioning/test_budget_concurrency.py::test_cli_processes_never_send_over_the_budget",
    "provisioning/test_client_limits.py::test_no_secret_in_what_a_rest_client_exposes",
    "provisioning/test_client_limits.py::test_no_secret_in_what_a_soap_client_exposes",
    "receiver/test_receiver.py::test_1000_callbacks_each_delivered_4_times",
    "receiver/test_receiver_async.py::test_concurrent_callbacks_share_commits",
    "receiver/test_receiver_crash.py",
    "receiver/test_receiver_encodings.py::test_every_codec_name_as_a_charset_is_answered_without_a_5xx",
    "receiver/test_receiver_encodings.py::test_every_declared_codec_name_is_answered_without_a_5xx",
    "receiver/test_receiver_hardening.py::test_a_stuck_commit_answers_503_and_never_freezes_health",
    "receiver/test_receiver_hardening.py::test_dead_letters_stop_at_the_burst_while_callbacks_keep_being_stored",
    "receiver/test_receiver_hardening.py::test_no_input_gets_a_5xx",
    "receiver/test_receiver_postgres.py",
    "serving/test_connections.py",
    "serving/test_header_limits.py::test_endless_headers_are_refused_431_with_memory_flat_and_callbacks_served",
    "serving/test_header_limits.py::test_too_many_header_fields_or_a_long_line_get_431_and_close",
    "soap/test_server_http.py::test_chunked_bodies_of_any_size_keep_the_connection_usable",
    "store/test_budget_summary.py::test_the_summary_never_clears_a_line_the_rows_count_over",
    "store/test_dead_letters.py::test_four_thousand_one_byte_letters_stay_under_the_cap",
    "store/test_store.py::test_concurrent_writers_are_all_committed[postgres",
    "store/test_store.py::test_iterating_events_in_pages",
    "store/test_store_roles.py::test_handler_runs_are_claimed_by_one_runner_only[postgres",
    "wsdldiff/test_wsdldiff.py::test_a_doctype_and_an_oversized_document_are_refused",
    "test_architecture.py::test_one_rule_for_all",
    "test_doctor.py::test_a_self_signed_server_is_named_and_passes_once_trusted",
    "test_examples.py::test_the_example_runs[README.md",
    "test_init.py::test_the_bridge_and_our_soap_server_never_import_zeep_or_the_uws_client",
    "test_init.py::test_the_compatibility_modules_warn_and_name_their_new_home",
    "test_init.py::test_the_receiver_side_never_imports_zeep_requests_or_the_emulator",
    "test_layout.py::test_retiring_uws_means_deleting_the_uws_client_the_emulator_uws_front_and_the_cli_uws_commands",
    "test_logs.py::test_an_unknown_log_level_is_refused_in_one_line",
    "test_logs.py::test_bridge_command_logs_access_lines_faults_and_its_rest_documents_redacted",
    "test_logs.py::test_importing_the_package_adds_no_handler_and_shows_nothing",
    "test_logs.py::test_receiver_command_logs_json_access_lines",
    "test_metrics.py::test_a_two_worker_uvicorn_receiver_reports_the_sum_of_both",
    "test_metrics.py::test_the_bridge_reports_its_rest_client_and_its_relay",
    "test_metrics.py::test_the_readme_sample_scrape_is_what_a_bridge_serves",
    "test_metrics.py::test_without_prometheus_client_the_functions_do_nothing",
    "test_secret_scan.py::test_the_secret_scan_fails_a_run_that_leaks",
)


def _slow_entry(item: pytest.Item) -> Optional[str]:
    where = item.nodeid.split("tests/", 1)[-1]
    for entry in SLOW:
        if (
            where == entry
            or where.startswith((entry + "::", entry + "["))
            or ("[" in entry and where.startswith(entry))
        ):
            return entry
    return None


@pytest.hookimpl(tryfirst=True)  # before -m deselects by marker
def pytest_collection_modifyitems(config: pytest.Config, items: List[pytest.Item]) -> None:
    used = set()
    for item in items:
        entry = _slow_entry(item)
        if entry is not None:
            item.add_marker(pytest.mark.slow)
            used.add(entry)
    # An entry is stale when its module is gone, or was collected whole and matched nothing; a
    # module left out (a run of one folder, --ignore) or a run of chosen tests proves nothing.
    if any("::" in str(arg) for arg in config.args):
        return
    collected = {item.nodeid.split("tests/", 1)[-1].split("::")[0] for item in items}
    here = Path(__file__).parent
    stale = sorted(
        entry for entry in set(SLOW) - used if _module(entry) in collected or not (here / _module(entry)).is_file()
    )
    if stale:
        raise pytest.UsageError(f"tests/conftest.py SLOW names no test: {', '.join(stale)}")


def _module(entry: str) -> str:
    """The test module a SLOW entry is in (``model/test_callbacks.py::test_x[1]``: ``model/test_callbacks.py``)."""
    return entry.split("::")[0].split("[")[0]


@pytest.hookimpl(trylast=True)  # after the secret scan has searched the files
def pytest_sessionfinish(session: pytest.Session) -> None:
    """A run that passed leaves no temporary folder behind (pytest would keep its last three); a run
    that failed keeps its folder, for a look at what the failing test left. Under pytest-xdist the
    controller removes the whole tree, its workers' folders included."""
    if hasattr(session.config, "workerinput") or session.exitstatus != pytest.ExitCode.OK:
        return
    factory = getattr(session.config, "_tmp_path_factory", None)
    basetemp = getattr(factory, "_basetemp", None)
    if basetemp is None:
        return  # no test asked for a temporary folder
    shutil.rmtree(basetemp, ignore_errors=True)
    current = basetemp.parent / f"{basetemp.name.rsplit('-', 1)[0]}-current"
    if current.is_symlink() and not current.exists():
        current.unlink()  # pytest's pointer to the folder just removed


def pytest_report_header() -> str:
    return (
        f"hypothesis profile: {PROFILE} (HYPOTHESIS_PROFILE=dev for a quick run, deep to fuzz; CI=true never runs dev)"
    )


class ManualClock:
    """A monotonic clock that moves only when told to: expiry is tested without waiting for it."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def parse_trusted(data: Union[bytes, str]) -> etree._Element:
    """Parse test fixtures and our own output (never hostile input) without DTDs or network."""
    raw = data.encode() if isinstance(data, str) else data
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, remove_comments=True)
    return etree.fromstring(raw, parser)


def shape(element: etree._Element) -> Shape:
    """Namespace-qualified names, text and child order: what must match, whatever the prefixes."""
    return (element.tag, (element.text or "").strip(), [shape(child) for child in element])


@pytest.fixture(scope="session")
def doc_request() -> bytes:
    return (DATA / "doc-restore-request.xml").read_bytes()


#: The login the emulator accepts by default.
USER, PASSWORD = "uws-user", "uws-password"


def client_for(base_url: str, **options: object) -> UwsClient:
    """A client with the emulator's login and tiny backoff, for loopback tests. The timeouts only
    bound a failure: generous, so that a machine busy with other work does not fail a test."""
    defaults = {"username": USER, "password": PASSWORD, "timeout": (5.0, 10.0), "backoff": 0.01}
    return UwsClient(base_url=base_url, **{**defaults, **options})  # type: ignore[arg-type]


#: The OAuth2 application the emulator accepts by default.
CLIENT_ID, CLIENT_SECRET = "ts-client", "ts-secret"


def rest_client_for(base_url: str, **options: object) -> RestClient:
    """A REST client with the emulator's keys and login, generous timeouts (as client_for) and tiny backoff."""
    defaults = {
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "username": USER,
        "password": PASSWORD,
        "timeout": (5.0, 10.0),
        "backoff": 0.01,
    }
    return RestClient(base_url=base_url, **{**defaults, **options})  # type: ignore[arg-type]


@pytest.fixture
def callbacks() -> Iterator[HttpServer]:
    """A loopback callback listener that acknowledges everything."""
    server = listener()
    yield server
    server.close()
