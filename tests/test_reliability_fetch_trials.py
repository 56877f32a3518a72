"""`fetch-trials` against a local HTTP server on 127.0.0.1 that replays what the real API can do.

OK records are written atomically with their retrieval date; 404, 5xx, slow, trickling, invalid
JSON, another study's record, a record missing a field and a refused connection all leave the
existing snapshot byte for byte as it was, with one line naming the study and the reason.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from reliability_fixtures import CORPUS, settings_for

from bot.ingest.fetch_trials import main as fetch_main
from bot.ingest.load import load_corpus
from bot.ingest.trials import load_trial_documents
from bot.settings import REPO_ROOT

LINKED = "NCT06333509"
RELATED = "NCT05838131"


def api_record(nct_id: str) -> dict:
    """What /api/v2/studies/{id} returns: the full study, more modules, no snapshotInfo."""
    study = json.loads((CORPUS / "trials" / f"{nct_id}.json").read_text(encoding="utf-8"))
    study.pop("snapshotInfo")
    study["protocolSection"]["statusModule"] = {"overallStatus": "RECRUITING"}
    study["derivedSection"] = {"miscInfoModule": {"versionHolder": "2026-11-20"}}
    study["hasResults"] = False
    return study


class Replay(BaseHTTPRequestHandler):
    """Behaviour per study id, set by each test in `server.behaviours`."""

    def log_message(self, *args):  # keep the test output clean
        pass

    def do_GET(self):
        server = self.server
        nct = self.path.rstrip("/").rsplit("/", 1)[-1]
        server.requests.append(self.path)
        behaviour = server.behaviours.get(nct, "404")
        if behaviour == "flaky":  # one 503, then the record
            behaviour = "503" if server.requests.count(self.path) == 1 else "ok"
        if behaviour in ("404", "500", "503", "403"):
            return self._send(int(behaviour), b'{"message": "error"}')
        if behaviour == "slow":
            time.sleep(2.0)
            return self._send(200, json.dumps(api_record(nct)).encode())
        if behaviour == "trickle":  # each byte in time, the whole far too late
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", "100000")
            self.end_headers()
            try:
                for _ in range(40):
                    self.wfile.write(b" ")
                    self.wfile.flush()
                    time.sleep(0.1)
            except OSError:
                pass
            return None
        if behaviour == "invalid_json":
            return self._send(200, b'{"protocolSection": {"identificationModule": ')
        if behaviour == "html":
            return self._send(200, b"<html><body>Service unavailable</body></html>", "text/html")
        if behaviour == "wrong_id":
            return self._send(200, json.dumps(api_record(RELATED if nct == LINKED else LINKED)).encode())
        if behaviour == "missing_title":
            record = api_record(nct)
            del record["protocolSection"]["identificationModule"]["briefTitle"]
            return self._send(200, json.dumps(record).encode())
        if behaviour == "odd_shape":
            record = api_record(nct)
            record["protocolSection"]["armsInterventionsModule"]["interventions"] = ["CT071"]
            return self._send(200, json.dumps(record).encode())
        return self._send(200, json.dumps(api_record(nct)).encode())

    def _send(self, status: int, body: bytes, kind: str = "application/json"):
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        with contextlib.suppress(OSError):
            self.wfile.write(body)


@pytest.fixture(scope="module")
def api():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Replay)
    server.daemon_threads = True
    server.behaviours, server.requests = {}, []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    server.base_url = f"http://127.0.0.1:{server.server_address[1]}/api/v2"
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def corpus(tmp_path, api):
    api.behaviours.clear()
    api.requests.clear()
    import shutil

    return Path(shutil.copytree(CORPUS, tmp_path / "corpus"))


def snapshot_state(corpus: Path) -> dict[str, tuple[bytes, int]]:
    """Every file in corpus/trials with its bytes and modification time."""
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted((corpus / "trials").iterdir())}


def fetch(corpus: Path, api, ids, **kw) -> int:
    options = {"base_url": api.base_url, "timeout": 0.5, "retries": 2, "backoff": 0.0} | kw
    return fetch_main(settings_for(corpus, corpus.parent / "index"), ids, **options)


def test_ok_record_replaces_the_snapshot_with_retrieval_date_and_provenance(corpus, api, capsys):
    api.behaviours[LINKED] = "ok"
    assert fetch(corpus, api, [LINKED]) == 0
    path = corpus / "trials" / f"{LINKED}.json"
    study = json.loads(path.read_text(encoding="utf-8"))
    info = study["snapshotInfo"]
    assert info["partial"] is False
    assert info["retrieved"] == datetime.now(UTC).date().isoformat()
    assert info["relation"] == "linked", "the relation to the article is kept"
    assert info["recordUrl"] == f"https://clinicaltrials.gov/study/{LINKED}"
    assert info["provenance"] == [f"{api.base_url}/studies/{LINKED}"]
    assert study["derivedSection"], "the whole record is kept, not only what we render"
    docs = load_trial_documents(path)
    note = next(d.page_content for d in docs if d.metadata["section"] == "Snapshot note")
    assert "partial snapshot" not in note and info["retrieved"] in note
    assert any("recruiting" in d.page_content for d in docs)
    load_corpus(corpus)  # the refreshed corpus still loads as a whole
    out = capsys.readouterr()
    assert out.out.startswith(f"{LINKED}: updated") and not out.err
    assert [p.name for p in (corpus / "trials").iterdir() if not p.name.endswith(".json")] == []


def test_default_ids_are_the_snapshots_already_there(corpus, api):
    api.behaviours.update({LINKED: "ok", RELATED: "ok"})
    assert fetch(corpus, api, []) == 0
    assert sorted(p.rsplit("/", 1)[-1] for p in api.requests) == [RELATED, LINKED]
    related = json.loads((corpus / "trials" / f"{RELATED}.json").read_text(encoding="utf-8"))
    assert related["snapshotInfo"]["relation"] == "related"
    assert related["snapshotInfo"]["relatedBecause"]


def test_a_passing_5xx_is_retried(corpus, api):
    api.behaviours[LINKED] = "flaky"
    assert fetch(corpus, api, [LINKED]) == 0
    assert len(api.requests) == 2
    assert json.loads((corpus / "trials" / f"{LINKED}.json").read_text())["snapshotInfo"]["partial"] is False


FAILURES = {
    "404": ("no study", 1),
    "403": ("HTTP 403", 1),
    "500": ("HTTP 500", 2),
    "503": ("HTTP 503", 2),
    "slow": ("within 0.5 s", 2),
    "trickle": ("within 0.5 s", 2),
    "invalid_json": ("not valid JSON", 1),
    "html": ("not valid JSON", 1),
    "wrong_id": (f"{RELATED}, but {LINKED} was expected", 1),
    "missing_title": ("briefTitle", 1),
    "odd_shape": ("not a usable study record", 1),
}


@pytest.mark.parametrize("behaviour", sorted(FAILURES))
def test_bad_answers_leave_the_snapshot_untouched(corpus, api, capsys, behaviour):
    expected_words, expected_requests = FAILURES[behaviour]
    api.behaviours[LINKED] = behaviour
    before = snapshot_state(corpus)
    started = time.monotonic()
    assert fetch(corpus, api, [LINKED]) != 0
    assert time.monotonic() - started < 10, "timeouts and retries must stay bounded"
    assert snapshot_state(corpus) == before, "the snapshot and its folder must not change"
    assert len(api.requests) == expected_requests
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith(f"{LINKED}: not updated:") and expected_words in err[0]
    assert "the existing snapshot is unchanged" in err[0] and "Traceback" not in err[0]


def test_refused_connection_leaves_the_snapshot_untouched(corpus, api, capsys):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    before = snapshot_state(corpus)
    assert fetch(corpus, api, [LINKED], base_url=f"http://127.0.0.1:{port}/api/v2") != 0
    assert snapshot_state(corpus) == before
    err = capsys.readouterr().err
    assert "cannot connect to 127.0.0.1" in err and "(2 attempts)" in err


def test_bad_ids_are_refused_before_any_request(corpus, api, capsys):
    before = snapshot_state(corpus)
    assert fetch(corpus, api, ["NCT123", "../../etc/passwd", "NCT06333509.json"]) != 0
    assert api.requests == [] and snapshot_state(corpus) == before
    assert len(capsys.readouterr().err.strip().splitlines()) == 3


def test_one_failure_does_not_stop_the_others(corpus, api, capsys):
    api.behaviours.update({LINKED: "500", RELATED: "ok"})
    before = snapshot_state(corpus)
    assert fetch(corpus, api, [LINKED, RELATED]) == 1
    after = snapshot_state(corpus)
    assert after[f"{LINKED}.json"] == before[f"{LINKED}.json"]
    assert after[f"{RELATED}.json"] != before[f"{RELATED}.json"]


def test_failed_write_leaves_the_snapshot_untouched(corpus, api, capsys, monkeypatch):
    api.behaviours[LINKED] = "ok"
    before = snapshot_state(corpus)

    def disk_full(fd):  # the data is written, making it durable fails
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    assert fetch(corpus, api, [LINKED]) != 0
    monkeypatch.undo()
    assert snapshot_state(corpus) == before, "no temp file left behind, old snapshot intact"
    assert "No space left on device" in capsys.readouterr().err


def test_cli_prints_one_line_per_study_and_exits_non_zero(corpus, api):
    api.behaviours.update({LINKED: "404", RELATED: "ok"})
    env = os.environ.copy() | {"PCL_CORPUS_DIR": str(corpus)}
    done = subprocess.run(
        [sys.executable, "-m", "bot", "fetch-trials", "--base-url", api.base_url]
        + ["--timeout", "0.5", "--retries", "1", LINKED, RELATED],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"{LINKED}: not updated: ClinicalTrials.gov has no study {LINKED} (HTTP 404); "
        "the existing snapshot is unchanged."
    ]
    assert done.stdout.startswith(f"{RELATED}: updated")
