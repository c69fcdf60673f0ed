"""Logs as text or JSON lines, each line of a run carrying the job id, worker threads included."""

from __future__ import annotations

import json
import logging
from concurrent.futures import ThreadPoolExecutor

import pytest

from supportersync.logs import current_job, setup_logging


@pytest.fixture
def synced_env(sqlite_url: str, classy_env: None, monkeypatch: pytest.MonkeyPatch, cli) -> None:
    monkeypatch.setenv("SUPPORTERSYNC_DATABASE_URL", sqlite_url)
    assert cli("db", "upgrade").exit_code == 0


@pytest.mark.parametrize("how", ["option", "env"])
def test_every_json_line_of_a_run_names_its_job(synced_env: None, cli, monkeypatch: pytest.MonkeyPatch,
                                                how: str) -> None:
    args = ["run", "all", "-vv"]
    if how == "option":
        args += ["--log-format", "json"]
    else:
        monkeypatch.setenv("SUPPORTERSYNC_LOG_FORMAT", "json")
    result = cli(*args)
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stderr.splitlines()]
    assert len(lines) >= 4
    assert {line["job_id"] for line in lines} == {1}
    assert {"time", "level", "logger", "message"} <= set(lines[0])


def test_a_failed_run_explains_itself_in_json_too(synced_env: None, cli, classy) -> None:
    classy.fail_next(20, status=503)
    result = cli("run", "campaigns", "--log-format", "json")
    assert result.exit_code == 1
    lines = [json.loads(line) for line in result.stderr.splitlines()]
    assert lines[-1]["level"] == "error" and lines[-1]["job_id"] == 1
    assert lines[-1]["message"].startswith("job 1 failed: Classy kept failing")


def test_text_lines_carry_the_job_id(synced_env: None, cli) -> None:
    result = cli("run", "supporters", "-v")
    assert result.exit_code == 0
    assert result.stderr.splitlines() and all(line.startswith("info: [job 1] ")
                                              for line in result.stderr.splitlines())


def test_worker_threads_log_with_the_running_job(capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging("json", logging.INFO)
    log = logging.getLogger("supportersync.test")
    token = current_job.set(42)
    try:
        with ThreadPoolExecutor(2) as pool:  # pool threads do not inherit context variables
            pool.submit(log.info, "from a worker").result()
        log.info("about job 7", extra={"job_id": 7})
    finally:
        current_job.reset(token)
    log.info("after the run")
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [(line["message"], line["job_id"]) for line in lines] == [
        ("from a worker", 42), ("about job 7", 7), ("after the run", None)]
    logging.getLogger("supportersync").handlers.clear()
