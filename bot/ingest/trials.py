"""ClinicalTrials.gov API v2 study JSON: validate it and render it as readable sections.

Each section names the study, so a sentence quoted alone still says which trial it is about.
The same validation guards `fetch-trials`, so a bad download never replaces a good snapshot.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from langchain_core.documents import Document

from bot.errors import CorpusError

NCT_ID = re.compile(r"^NCT\d{8}$")
RECORD_URL = "https://clinicaltrials.gov/study/{nct_id}"

_PHASES = {
    "EARLY_PHASE1": "Early Phase 1",
    "PHASE1": "Phase 1",
    "PHASE2": "Phase 2",
    "PHASE3": "Phase 3",
    "PHASE4": "Phase 4",
    "NA": "not applicable",
}


def _words(value: str) -> str:
    """API enums (NOT_YET_RECRUITING) as words (not yet recruiting)."""
    return value.replace("_", " ").lower()


def _get(study: dict, path: str) -> Any:
    node: Any = study
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def validate_study(study: Any, path: Path | str, expected_id: str | None = None) -> str:
    """Return the NCT id, or raise CorpusError naming the file and the field."""
    if not isinstance(study, dict):
        raise CorpusError(path, "(top level)", "is not a JSON object")
    if not isinstance(study.get("protocolSection"), dict):
        raise CorpusError(path, "protocolSection", "is missing", "is this a ClinicalTrials.gov v2 study?")
    nct_id = _get(study, "protocolSection.identificationModule.nctId")
    if not isinstance(nct_id, str) or not nct_id:
        raise CorpusError(path, "protocolSection.identificationModule.nctId", "is missing")
    if not NCT_ID.match(nct_id):
        raise CorpusError(
            path,
            "protocolSection.identificationModule.nctId",
            f"is {nct_id!r}, not an NCT id like NCT01234567",
        )
    if expected_id and nct_id != expected_id:
        raise CorpusError(
            path,
            "protocolSection.identificationModule.nctId",
            f"is {nct_id}, but {expected_id} was expected",
        )
    title = _get(study, "protocolSection.identificationModule.briefTitle")
    if not isinstance(title, str) or not title.strip():
        raise CorpusError(path, "protocolSection.identificationModule.briefTitle", "is missing or empty")
    for field, shape in _SHAPES.items():
        _check_shape(study, path, field, shape)
    return nct_id


# What `render_sections` reads, and the JSON type each must have when present.
_SHAPES: dict[str, object] = {
    "protocolSection.identificationModule.officialTitle": str,
    "protocolSection.descriptionModule.briefSummary": str,
    "protocolSection.conditionsModule.conditions": [str],
    "protocolSection.designModule.phases": [str],
    "protocolSection.designModule.studyType": str,
    "protocolSection.designModule.designInfo.interventionModel": str,
    "protocolSection.statusModule.overallStatus": str,
    "protocolSection.armsInterventionsModule.interventions": [{"type": str, "name": str, "description": str}],
    "protocolSection.armsInterventionsModule.armGroups": [{"label": str, "description": str}],
    "protocolSection.eligibilityModule.eligibilityCriteria": str,
    "protocolSection.eligibilityModule.minimumAge": str,
    "protocolSection.eligibilityModule.sex": str,
    "protocolSection.eligibilityModule.healthyVolunteers": bool,
    "protocolSection.sponsorCollaboratorsModule.leadSponsor.name": str,
    "protocolSection.contactsLocationsModule.locations": [{"facility": str, "city": str, "country": str}],
    "snapshotInfo": {"note": str, "retrieved": str, "recordUrl": str, "relation": str},
}
_TYPE_NAMES = {str: "a string", bool: "true or false", list: "a list", dict: "an object"}


def _check_shape(study: dict, path: Path | str, field: str, shape: object) -> None:
    """Raise CorpusError naming `field` when it is present with another JSON type than `shape`."""
    parent, _, key = field.rpartition(".")
    node = _get(study, parent) if parent else study
    if not isinstance(node, dict) or node.get(key) is None:
        return
    value = node[key]
    if isinstance(shape, list):
        if not isinstance(value, list):
            raise CorpusError(path, field, "is not a list")
        for i, item in enumerate(value):
            _check_value(item, path, f"{field}[{i}]", shape[0])
    else:
        _check_value(value, path, field, shape)


def _check_value(value: object, path: Path | str, field: str, shape: object) -> None:
    if isinstance(shape, dict):
        if not isinstance(value, dict):
            raise CorpusError(path, field, "is not an object")
        for key, kind in shape.items():
            if value.get(key) is not None and not isinstance(value[key], kind):
                raise CorpusError(path, f"{field}.{key}", f"is not {_TYPE_NAMES[kind]}")
    elif not isinstance(value, shape):
        raise CorpusError(path, field, f"is not {_TYPE_NAMES[shape]}")


def render_sections(study: dict) -> list[tuple[str, str]]:
    """(section, text) pairs that read well on their own."""
    p = study["protocolSection"]
    ident = p["identificationModule"]
    nct = ident["nctId"]
    sections: list[tuple[str, str]] = []

    overview = [f'{nct} is the ClinicalTrials.gov record titled "{ident["briefTitle"].strip()}".']
    if ident.get("officialTitle"):
        overview.append(f'Its official title is "{ident["officialTitle"].strip()}".')
    summary = _get(p, "descriptionModule.briefSummary")
    if summary:
        overview.append(summary.strip())
    sections.append(("Overview", "\n\n".join(overview)))

    conditions = _get(p, "conditionsModule.conditions") or []
    if conditions:
        sections.append(("Conditions", f"The conditions studied in {nct} are: {'; '.join(conditions)}."))

    interventions = _get(p, "armsInterventionsModule.interventions") or []
    lines = []
    for item in interventions:
        label = " ".join(x for x in (_words(item.get("type", "")), "intervention") if x)
        lines.append(f"The {label} in {nct} is {item.get('name', 'not named')}.")
        if item.get("description"):
            lines.append(item["description"].strip())
    for arm in _get(p, "armsInterventionsModule.armGroups") or []:
        arm_text = f"{nct} has an arm called {arm.get('label', 'unnamed')}"
        arm_text += f": {arm['description'].strip()}" if arm.get("description") else "."
        lines.append(arm_text if arm_text.endswith(".") else arm_text + ".")
    if lines:
        sections.append(("Intervention", "\n\n".join(lines)))

    design = _get(p, "designModule") or {}
    status = _get(p, "statusModule.overallStatus")
    facts = []
    if design.get("phases"):
        phases = " / ".join(_PHASES.get(ph, _words(ph)) for ph in design["phases"])
        article = "an" if phases[0].lower() in "aeiou" else "a"
        facts.append(f"{nct} is {article} {phases} study.")
    if design.get("studyType"):
        facts.append(f"The study type of {nct} is {_words(design['studyType'])}.")
    model = _get(design, "designInfo.interventionModel")
    if model:
        facts.append(f"The intervention model of {nct} is {_words(model)}.")
    if status:
        facts.append(f"The recruitment status of {nct} in this snapshot is {_words(status)}.")
    if facts:
        sections.append(("Phase and status", " ".join(facts)))

    elig = _get(p, "eligibilityModule") or {}
    elig_lines = []
    if elig.get("eligibilityCriteria"):
        elig_lines.append(f"Eligibility criteria for {nct}:")
        elig_lines.append(elig["eligibilityCriteria"].strip())
    who = []
    if elig.get("minimumAge"):
        who.append(f"the minimum age is {elig['minimumAge'].lower()}")
    if elig.get("sex"):
        who.append("all sexes are eligible" if elig["sex"] == "ALL" else f"sex: {_words(elig['sex'])}")
    if elig.get("healthyVolunteers") is not None:
        who.append("healthy volunteers are " + ("accepted" if elig["healthyVolunteers"] else "not accepted"))
    if who:
        elig_lines.append(f"In {nct}, " + "; ".join(who) + ".")
    if elig_lines:
        sections.append(("Eligibility", "\n\n".join(elig_lines)))

    sponsor = _get(p, "sponsorCollaboratorsModule.leadSponsor.name")
    places = []
    for loc in _get(p, "contactsLocationsModule.locations") or []:
        place = ", ".join(x for x in (loc.get("facility"), loc.get("city"), loc.get("country")) if x)
        if place:
            places.append(place)
    where = []
    if sponsor:
        where.append(f"The lead sponsor of {nct} is {sponsor}.")
    if places:
        where.append(f"{nct} lists these locations: {'; '.join(places)}.")
    if where:
        sections.append(("Sponsor and locations", " ".join(where)))

    info = study.get("snapshotInfo") or {}
    note = []
    if info.get("partial"):
        note.append(f"This copy of {nct} is a partial snapshot, not the full ClinicalTrials.gov record.")
    if info.get("note"):
        note.append(info["note"].strip())
    if info.get("retrieved"):
        note.append(f"The snapshot of {nct} was retrieved on {info['retrieved']}.")
    note.append(f"The full, current record of {nct} is at {RECORD_URL.format(nct_id=nct)}.")
    sections.append(("Snapshot note", " ".join(note)))
    return sections


def load_trial_documents(path: Path) -> list[Document]:
    try:
        study = json.loads(Path(path).read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise CorpusError(path, "(encoding)", "is not UTF-8 text", "save the file as UTF-8") from None
    except json.JSONDecodeError as exc:
        raise CorpusError(
            path, "(JSON)", f"is not valid JSON: line {exc.lineno} column {exc.colno}"
        ) from None
    nct = validate_study(study, path)
    if Path(path).stem != nct:
        raise CorpusError(
            path,
            "protocolSection.identificationModule.nctId",
            f"is {nct} but the file is named {Path(path).name}",
        )
    info = study.get("snapshotInfo") or {}
    title = f"{nct}: {study['protocolSection']['identificationModule']['briefTitle'].strip()}"
    base = {
        "source_id": nct,
        "kind": "trial",
        "title": title,
        "url": info.get("recordUrl") or RECORD_URL.format(nct_id=nct),
        "relation": info.get("relation", ""),
        "partial": bool(info.get("partial", False)),
    }
    return [
        Document(page_content=text, metadata=base | {"section": section, "section_order": i})
        for i, (section, text) in enumerate(render_sections(study))
    ]
