"""`python -m bot fetch-trials`: refresh trial snapshots from the ClinicalTrials.gov API v2.

For each id: GET {base_url}/studies/{NCT_ID} with a timeout and a few retries, validate the
study with the same checks the corpus loader uses, add a `snapshotInfo` block (full record,
retrieval date, where it came from) and replace the snapshot atomically. Anything short of a
valid record of the requested study (offline, 404, 5xx, too slow, not JSON, another study)
leaves the existing snapshot byte for byte as it was, with one line saying why.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from bot.errors import CorpusError
from bot.ingest.trials import NCT_ID, RECORD_URL, render_sections, validate_study
from bot.settings import Settings

DEFAULT_BASE_URL = "https://clinicaltrials.gov/api/v2"
MAX_BYTES = 20_000_000  # a study record is well under 1 MB; more means something else answered
_RETRY_STATUS = {408, 425, 429, 500, 502, 503, 504}
_KEEP_FROM_OLD = ("relation", "linkedFrom", "relatedBecause")


class FetchError(Exception):
    """Why one study was not refreshed, in words a maintainer can act on (one line)."""


def main(
    settings: Settings,
    nct_ids: list[str] | None = None,
    base_url: str = DEFAULT_BASE_URL,
    timeout: float = 20.0,
    retries: int = 3,
    backoff: float = 1.0,
) -> int:
    """Refresh the given studies (default: every snapshot in corpus/trials); 0 if all succeeded."""
    trials_dir = Path(settings.index.corpus_dir) / "trials"
    ids = list(nct_ids or sorted(p.stem for p in trials_dir.glob("*.json")))
    if not ids:
        print(
            f"error: no trial snapshots in {trials_dir} and no NCT ids given. "
            "Name the studies, e.g. python -m bot fetch-trials NCT06333509",
            file=sys.stderr,
        )
        return 2
    base_url = (base_url or DEFAULT_BASE_URL).rstrip("/")
    failed = updated = 0
    with httpx.Client(
        timeout=httpx.Timeout(timeout),
        headers={"Accept": "application/json", "User-Agent": "pcl-companion fetch-trials"},
        follow_redirects=True,
    ) as client:
        for raw in ids:
            nct = raw.strip().upper()
            if not NCT_ID.match(nct):
                print(f"{raw!r}: not an NCT id like NCT01234567; skipped.", file=sys.stderr)
                failed += 1
                continue
            target = trials_dir / f"{nct}.json"
            try:
                retrieved = refresh(client, base_url, nct, target, timeout, max(1, retries), backoff)
            except FetchError as exc:
                kept = "the existing snapshot is unchanged" if target.exists() else "no snapshot written"
                print(f"{nct}: not updated: {exc}; {kept}.", file=sys.stderr)
                failed += 1
                continue
            print(f"{nct}: updated {target} (full record, retrieved {retrieved}).")
            updated += 1
    if updated:
        print("The index is rebuilt from the new snapshots at the next start (or: python -m bot index).")
    return 1 if failed else 0


def refresh(
    client: httpx.Client,
    base_url: str,
    nct: str,
    target: Path,
    timeout: float,
    attempts: int,
    backoff: float,
) -> str:
    """Fetch, validate and atomically write one study; returns the retrieval date."""
    url = f"{base_url}/studies/{nct}"
    body = _download(client, url, nct, timeout, attempts, backoff)
    try:
        study = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise FetchError(f"the answer from {_host(url)} is not valid JSON") from None
    try:
        validate_study(study, url, expected_id=nct)
        render_sections(study)  # the loader must be able to read it, not just the validator
    except CorpusError as exc:
        problem = str(exc).removeprefix(f"{url}: ")
        raise FetchError(f"the answer is not a usable study record ({problem})") from None
    except Exception as exc:  # an odd shape the renderer trips over (e.g. a list where a dict goes)
        raise FetchError(f"the answer is not a usable study record ({type(exc).__name__})") from None

    retrieved = datetime.now(UTC).date().isoformat()
    old = _old_snapshot_info(target)
    study["snapshotInfo"] = {
        "partial": False,
        "retrieved": retrieved,
        **{k: old[k] for k in _KEEP_FROM_OLD if old.get(k)},
        "recordUrl": RECORD_URL.format(nct_id=nct),
        "provenance": [url],
    }
    study["snapshotInfo"].setdefault("relation", "related")
    _write_atomically(target, study)
    return retrieved


def _download(
    client: httpx.Client, url: str, nct: str, timeout: float, attempts: int, backoff: float
) -> bytes:
    last = ""
    for attempt in range(1, attempts + 1):
        try:
            return _get_once(client, url, nct, timeout)
        except _Retryable as exc:
            last = str(exc)
        except httpx.TimeoutException:
            last = f"no answer from {_host(url)} within {timeout:g} s"
        except httpx.ConnectError:
            last = f"cannot connect to {_host(url)} (offline?)"
        except httpx.TransportError as exc:
            last = f"network error talking to {_host(url)} ({type(exc).__name__})"
        if attempt < attempts:
            time.sleep(backoff * 2 ** (attempt - 1))
    tries = "1 attempt" if attempts == 1 else f"{attempts} attempts"
    raise FetchError(f"{last} ({tries})")


class _Retryable(Exception):
    pass


def _get_once(client: httpx.Client, url: str, nct: str, timeout: float) -> bytes:
    # `timeout` bounds each connect and each read; this bounds a server that trickles bytes.
    deadline = time.monotonic() + 3 * timeout
    with client.stream("GET", url) as response:
        status = response.status_code
        if status == 404:
            raise FetchError(f"ClinicalTrials.gov has no study {nct} (HTTP 404)")
        if status in _RETRY_STATUS:
            raise _Retryable(f"{_host(url)} answered HTTP {status}")
        if status >= 400:
            raise FetchError(f"{_host(url)} answered HTTP {status}")
        chunks, size = [], 0
        for chunk in response.iter_bytes():
            size += len(chunk)
            if size > MAX_BYTES:
                raise FetchError(f"the answer from {_host(url)} is larger than {MAX_BYTES // 1_000_000} MB")
            if time.monotonic() > deadline:
                raise httpx.ReadTimeout("too slow", request=response.request)
            chunks.append(chunk)
        return b"".join(chunks)


def _old_snapshot_info(target: Path) -> dict:
    try:
        info = json.loads(target.read_text(encoding="utf-8")).get("snapshotInfo")
    except (OSError, ValueError, AttributeError):
        return {}
    return info if isinstance(info, dict) else {}


def _write_atomically(target: Path, study: dict) -> None:
    """Temp file in the same folder, fsync, rename over the old snapshot: all or nothing.

    The temp name does not end in .json, so a loader running meanwhile never reads it.
    """
    try:
        target.parent.mkdir(exist_ok=True)
        mode = target.stat().st_mode & 0o777 if target.exists() else 0o644
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.stem}.", suffix=".tmp")
    except OSError as exc:
        raise FetchError(f"cannot write in {target.parent} ({exc.strerror or exc})") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(study, f, indent=2, ensure_ascii=False)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise FetchError(f"cannot write {target.name} ({exc.strerror or exc})") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _host(url: str) -> str:
    return urlsplit(url).netloc or url
