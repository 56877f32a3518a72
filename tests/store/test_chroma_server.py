"""Scale-out mode: the index lives on a real `chroma run` server on 127.0.0.1.

One server for the module (temporary path, free port, telemetry off); the bot builds its index
into it through CHROMA_HOST/CHROMA_PORT and answers from it exactly as from the local store.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import chromadb
import httpx
import pytest

from bot.errors import IndexError_
from bot.pipeline import Companion
from bot.settings import REPO_ROOT, Settings
from bot.store.chroma import POINTER_SUFFIX, SENTENCES_SUFFIX, chroma_settings, open_store
from bot.store.index import open_index

ARTICLE_URL = "https://healthtree.org/myeloma/community/articles/25-allo-car-t-for-pcl"
COLLECTION = "pcl_test"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _chroma_cli() -> str:
    found = shutil.which("chroma") or str(Path(sys.executable).with_name("chroma"))
    assert Path(found).exists(), "the `chroma` command (installed with chromadb) is missing"
    return found


@pytest.fixture(scope="module")
def chroma_server(tmp_path_factory):
    data = tmp_path_factory.mktemp("chroma-data")
    port = _free_port()
    log = open(data.parent / "chroma-server.log", "wb")  # noqa: SIM115 - closed below
    env = os.environ | {"ANONYMIZED_TELEMETRY": "False"}
    proc = subprocess.Popen(
        [_chroma_cli(), "run", "--path", str(data), "--host", "127.0.0.1", "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, f"chroma run exited early; see {log.name}"
            try:
                if httpx.get(f"http://127.0.0.1:{port}/api/v2/heartbeat", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, f"chroma run did not answer its heartbeat; see {log.name}"
            time.sleep(0.2)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.fixture(scope="module")
def small_corpus(tmp_path_factory) -> Path:
    """The article and the linked trial record: every answer below, at a third of the build cost."""
    corpus = tmp_path_factory.mktemp("corpus")
    (corpus / "trials").mkdir()
    shutil.copy(REPO_ROOT / "corpus" / "article.md", corpus)
    shutil.copy(REPO_ROOT / "corpus" / "trials" / "NCT06333509.json", corpus / "trials")
    shutil.copytree(REPO_ROOT / "corpus" / "questions", corpus / "questions")  # the ranker reads them
    return corpus


@pytest.fixture(scope="module")
def server_settings(chroma_server, small_corpus, tmp_path_factory) -> Settings:
    return Settings().with_overrides(
        chroma_host="127.0.0.1",
        chroma_port=chroma_server,
        collection=COLLECTION,
        corpus_dir=small_corpus,
        index_dir=tmp_path_factory.mktemp("replica-a-index"),  # only ever holds a lock file
    )


@pytest.fixture(scope="module")
def companion(server_settings) -> Companion:
    return Companion(server_settings, progress=False)


@pytest.fixture(scope="module")
def embeddings(companion):
    return companion.embeddings  # the model loads once for the module


def _raw_client(port: int):
    return chromadb.HttpClient(host="127.0.0.1", port=port, settings=chroma_settings())


def test_index_is_built_on_the_server_not_on_local_disk(companion, server_settings, chroma_server):
    assert companion.index.store.location.startswith(f"http://127.0.0.1:{chroma_server}/{COLLECTION}__b")
    assert companion.index.manifest["chunks"] == companion.index.chunks.count() > 0
    assert not list(Path(server_settings.index.index_dir).glob("store-*"))
    pointer = _raw_client(chroma_server).get_collection(COLLECTION + POINTER_SUFFIX)
    assert json.loads(pointer.metadata["manifest"])["fingerprint"] == companion.index.manifest["fingerprint"]


def test_incidence_question_is_answered_with_article_citation(companion):
    reply = companion.ask("How many people are diagnosed with PCL each year in the US?")
    assert reply.kind == "answer"
    assert "200" in reply.answer
    assert ARTICLE_URL in [c.url for c in reply.citations]
    assert "[1]" in reply.answer
    assert "not medical advice" in reply.disclaimer


def test_trial_sponsor_is_answered_from_the_trial_record(companion):
    reply = companion.ask("Who is the lead sponsor of NCT06333509?")
    assert reply.kind == "answer"
    assert "CARsgen Therapeutics" in reply.answer
    assert "https://clinicaltrials.gov/study/NCT06333509" in [c.url for c in reply.citations]


def test_emergency_guidance_comes_first_in_server_mode(companion):
    reply = companion.ask("I have a fever of 39C and chills after CAR-T")
    assert reply.kind == "emergency"
    assert "911" in reply.answer


def test_second_replica_with_no_local_state_reuses_the_server_index(companion, server_settings, tmp_path):
    replica = Companion(server_settings.with_overrides(index_dir=tmp_path / "replica-b"), progress=False)
    assert replica.index.store.location == companion.index.store.location
    assert replica.index.manifest["built_at"] == companion.index.manifest["built_at"]
    question = "What is CT0596?"
    assert replica.ask(question).answer == companion.ask(question).answer


def test_stale_index_is_rebuilt_and_replicas_of_each_version_keep_their_own_build(
    companion, server_settings, embeddings, tmp_path
):
    settings = server_settings.with_overrides(index_dir=tmp_path / "lock")
    original = companion.index
    changed_corpus = tmp_path / "changed"
    shutil.copytree(settings.index.corpus_dir, changed_corpus)
    study = json.loads((changed_corpus / "trials" / "NCT06333509.json").read_text(encoding="utf-8"))
    ident = study["protocolSection"]["identificationModule"]
    ident["nctId"], ident["briefTitle"] = "NCT09999991", "Test record for the rebuild check"
    (changed_corpus / "trials" / "NCT09999991.json").write_text(json.dumps(study), encoding="utf-8")
    changed = settings.with_overrides(corpus_dir=changed_corpus)

    fresh = open_index(changed, embeddings, progress=False)

    assert fresh.manifest["fingerprint"] != original.manifest["fingerprint"]
    assert fresh.store.location != original.store.location
    assert "NCT09999991" in fresh.manifest["sources"]
    assert fresh.chunks.count() > original.manifest["chunks"]
    # A replica still holding the previous build keeps answering from it.
    assert original.chunks.count() == original.manifest["chunks"]
    # Opening again with the same corpus finds the new build fresh: no second rebuild.
    assert open_index(changed, embeddings, progress=False).store.location == fresh.store.location
    # A replica of the other version (original corpus) reopens its own build instead of
    # rebuilding the shared index back: no rebuild war during a rolling deploy.
    assert open_index(settings, embeddings, progress=False).store.location == original.store.location


def _tiny_build(settings: Settings, fingerprint: str) -> str:
    """A complete two-record build through the real build path (no model needed); its name."""
    with open_store(settings) as builder:
        for collection in (builder.store.chunks, builder.store.sentences):
            collection.add(ids=["a", "b"], embeddings=[[1.0, 0.0], [0.0, 1.0]], documents=["a", "b"])
        builder.commit({"fingerprint": fingerprint, "chunks": 2, "sentences": 2})
    return builder.build


def test_server_keeps_newest_build_per_fingerprint_and_the_one_it_replaced(
    server_settings, chroma_server, monkeypatch
):
    monkeypatch.setattr("bot.store.chroma._GRACE_SECONDS", 0)
    settings = server_settings.with_overrides(collection="pcl_gc")
    v1_first = _tiny_build(settings, "v1")
    v1_second = _tiny_build(settings, "v1")  # a rebuild of the same version
    v2, v3 = _tiny_build(settings, "v2"), _tiny_build(settings, "v3")
    v1_third = _tiny_build(settings, "v1")  # replaces v1_second, so v1_first can go

    names = {c.name for c in _raw_client(chroma_server).list_collections()}
    builds = {n.removesuffix(SENTENCES_SUFFIX) for n in names if n.startswith("pcl_gc__b")}
    assert builds == {v1_third, v1_second, v2, v3}
    assert v1_first not in builds

    v4 = _tiny_build(settings, "v4")  # only the three newest fingerprints are kept: v2 goes

    names = {c.name for c in _raw_client(chroma_server).list_collections()}
    builds = {n.removesuffix(SENTENCES_SUFFIX) for n in names if n.startswith("pcl_gc__b")}
    assert builds == {v4, v1_third, v1_second, v3}


def test_unreachable_server_error_says_what_to_do(tmp_path):
    settings = Settings().with_overrides(
        chroma_host="127.0.0.1", chroma_port=_free_port(), index_dir=tmp_path / "idx"
    )
    with pytest.raises(IndexError_) as err:
        open_index(settings, embeddings=None, progress=False)
    message = str(err.value)
    assert "Cannot reach the Chroma server at http://127.0.0.1:" in message
    assert "chroma run" in message and "unset CHROMA_HOST" in message
