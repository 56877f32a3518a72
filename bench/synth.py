"""Synthetic corpora for the growth benchmark: the real corpus plus generated trial records.

Each generated file follows the schema of `corpus/trials/*.json` (ClinicalTrials.gov API v2,
partial snapshot) with its own NCT id, title, conditions, sponsor, product, eligibility and
sites, written from templates with random but plausible values, so the sentences differ from
file to file and BM25 and the embedding model see a realistic spread of text. A fixed seed
makes every corpus reproducible.
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

from bot.ingest.chunk import chunk_documents
from bot.ingest.load import load_corpus
from bot.ingest.trials import load_trial_documents

CONDITIONS = [
    "Multiple Myeloma",
    "Relapsed/Refractory Multiple Myeloma",
    "Smoldering Multiple Myeloma",
    "AL Amyloidosis",
    "Waldenstrom Macroglobulinemia",
    "Diffuse Large B-Cell Lymphoma",
    "Follicular Lymphoma",
    "Mantle Cell Lymphoma",
    "Chronic Lymphocytic Leukemia",
    "Acute Myeloid Leukemia",
    "Acute Lymphoblastic Leukemia",
    "Myelodysplastic Syndromes",
    "Hodgkin Lymphoma",
    "Marginal Zone Lymphoma",
    "T-Cell Lymphoma",
    "Myelofibrosis",
    "Non-Small Cell Lung Cancer",
    "Triple-Negative Breast Cancer",
    "Ovarian Cancer",
    "Pancreatic Adenocarcinoma",
    "Glioblastoma",
    "Hepatocellular Carcinoma",
    "Colorectal Cancer",
    "Melanoma",
    "Renal Cell Carcinoma",
    "Prostate Cancer",
    "Gastric Cancer",
    "Sarcoma",
    "Neuroblastoma",
    "Systemic Lupus Erythematosus",
    "Myasthenia Gravis",
    "Graft-versus-host Disease",
]
TARGETS = [
    "BCMA",
    "GPRC5D",
    "CD19",
    "CD20",
    "CD22",
    "CD38",
    "CD33",
    "CD123",
    "CD30",
    "CD7",
    "FcRH5",
    "SLAMF7",
    "HER2",
    "EGFR",
    "Claudin18.2",
    "GD2",
    "Mesothelin",
    "PSMA",
    "B7-H3",
    "GPC3",
    "NKG2D",
]
PLATFORMS = [
    ("autologous CAR T-cell product", "made from the patient's own T cells"),
    ("allogeneic CAR T-cell product", "made from the T cells of healthy donors"),
    ("allogeneic CAR-NK cell product", "made from donor natural killer cells"),
    ("bispecific T-cell engager", "given as an injection under the skin"),
    ("antibody-drug conjugate", "given as an infusion into a vein"),
    ("monoclonal antibody", "given as an infusion every three weeks"),
    ("oral small-molecule inhibitor", "taken as a tablet once a day"),
    ("tumour-infiltrating lymphocyte therapy", "grown from cells taken from the patient's tumour"),
]
SPONSOR_FIRST = [
    "Northbridge",
    "Meridian",
    "Harborview",
    "Cedar Ridge",
    "Bluewater",
    "Silverline",
    "Crescent",
    "Ironwood",
    "Lakeshore",
    "Summit",
    "Granite",
    "Aurora",
    "Redwood",
    "Oakmont",
    "Westbrook",
    "Pinecrest",
    "Riverbend",
    "Stonegate",
    "Fairhaven",
    "Highland",
    "Kestrel",
    "Larkspur",
]
SPONSOR_KIND = [
    ("Biotherapeutics", "INDUSTRY"),
    ("Oncology", "INDUSTRY"),
    ("Cell Therapies", "INDUSTRY"),
    ("Pharmaceuticals", "INDUSTRY"),
    ("Immunotherapeutics", "INDUSTRY"),
    ("University Hospital", "OTHER"),
    ("Cancer Center", "OTHER"),
    ("Medical College", "OTHER"),
    ("Research Institute", "OTHER"),
    ("Children's Hospital", "OTHER"),
]
SITES = [
    ("Boston", "United States"),
    ("Houston", "United States"),
    ("Seattle", "United States"),
    ("Rochester", "United States"),
    ("Durham", "United States"),
    ("Toronto", "Canada"),
    ("London", "United Kingdom"),
    ("Paris", "France"),
    ("Heidelberg", "Germany"),
    ("Milan", "Italy"),
    ("Madrid", "Spain"),
    ("Amsterdam", "Netherlands"),
    ("Shanghai", "China"),
    ("Beijing", "China"),
    ("Wuhan", "China"),
    ("Tokyo", "Japan"),
    ("Seoul", "Korea, Republic of"),
    ("Melbourne", "Australia"),
    ("Sao Paulo", "Brazil"),
    ("Tel Aviv", "Israel"),
]
FACILITY_KIND = ["University Hospital", "Cancer Institute", "Medical Center", "Clinical Research Unit"]
PHASE_WORDS = {"EARLY_PHASE1": "Early Phase 1", "PHASE1": "Phase 1", "PHASE2": "Phase 2", "PHASE3": "Phase 3"}
PHASES = [["EARLY_PHASE1"], ["PHASE1"], ["PHASE1", "PHASE2"], ["PHASE2"], ["PHASE3"]]
STATUSES = ["RECRUITING", "NOT_YET_RECRUITING", "ACTIVE_NOT_RECRUITING", "COMPLETED", "TERMINATED"]
MODELS = ["SINGLE_GROUP", "PARALLEL", "SEQUENTIAL", "CROSSOVER"]
ENDPOINTS = [
    "the rate of dose-limiting toxicities in the first 28 days",
    "the overall response rate by International Myeloma Working Group criteria",
    "progression-free survival at 12 months",
    "the rate of minimal residual disease negativity",
    "the recommended Phase 2 dose",
    "the rate of cytokine release syndrome of grade 3 or higher",
    "overall survival at two years",
    "the duration of response",
]
SUMMARY = [
    "{nct} tests whether {product} is safe in people with {cond}.",
    "{product} is an investigational {platform} {made}.",
    "{product} is aimed at the target {target}.",
    "The main goal of {nct} is to measure {endpoint}.",
    "Participants in {nct} are followed for {months} months after treatment.",
    "The sponsor expects to enrol about {n} participants in {nct}.",
    "Earlier laboratory work suggested that {product} may reach cells that carry {target}.",
    "{nct} also looks at {endpoint2}.",
    "People in {nct} may receive lymphodepleting chemotherapy before {product}.",
    "Side effects of {product} are watched closely during the first {days} days.",
]
INCLUSION = [
    "Adults aged {age} years or older.",
    "A confirmed diagnosis of {cond}.",
    "At least {lines} prior lines of therapy.",
    "Measurable disease at enrolment.",
    "An ECOG performance status of 0 to {ecog}.",
    "Adequate kidney, liver and heart function.",
    "A life expectancy of at least {weeks} weeks.",
    "Disease that expresses {target}.",
]
EXCLUSION = [
    "Active infection that needs treatment.",
    "Prior treatment with a therapy aimed at {target}.",
    "A stem cell transplant within the last {days} days.",
    "Known involvement of the central nervous system.",
    "Pregnancy or breastfeeding.",
]


def _pick(rng: random.Random, items: list, k: int) -> list:
    return rng.sample(items, k=min(k, len(items)))


def synthetic_trial(rng: random.Random, nct: str) -> dict:
    """One plausible trial record in the shape of corpus/trials/*.json."""
    conds = _pick(rng, CONDITIONS, rng.randint(1, 3))
    target = rng.choice(TARGETS)
    platform, made = rng.choice(PLATFORMS)
    product = (
        f"{rng.choice('ABCDEFGHJKLMNPRSTVXZ')}{rng.choice('ABCDEFGHJKLMNPRSTVXZ')}-{rng.randint(100, 9999)}"
    )
    sponsor_kind, sponsor_class = rng.choice(SPONSOR_KIND)
    sponsor = f"{rng.choice(SPONSOR_FIRST)} {sponsor_kind}"
    endpoint, endpoint2 = _pick(rng, ENDPOINTS, 2)
    fill = {
        "nct": nct,
        "product": product,
        "platform": platform,
        "made": made,
        "target": target,
        "cond": conds[0].lower(),
        "endpoint": endpoint,
        "endpoint2": endpoint2,
        "months": rng.choice([6, 12, 24, 36, 60]),
        "n": rng.randint(12, 480),
        "days": rng.choice([14, 28, 60, 90]),
        "age": rng.choice([12, 18, 21]),
        "lines": rng.randint(1, 4),
        "ecog": rng.randint(1, 2),
        "weeks": rng.choice([8, 12, 24]),
    }
    summary = " ".join(t.format(**fill) for t in _pick(rng, SUMMARY, rng.randint(4, 8)))
    inclusion = "\n".join("* " + t.format(**fill) for t in _pick(rng, INCLUSION, rng.randint(3, 6)))
    exclusion = "\n".join("* " + t.format(**fill) for t in _pick(rng, EXCLUSION, rng.randint(2, 4)))
    phases = rng.choice(PHASES)
    sites = []
    for city, country in _pick(rng, SITES, rng.randint(1, 5)):
        sites.append({"facility": f"{city} {rng.choice(FACILITY_KIND)}", "city": city, "country": country})
    arms = [
        {
            "label": f"{product} dose level {i + 1}",
            "description": f"Participants in {nct} receive {product} at dose level {i + 1}.",
        }
        for i in range(rng.randint(1, 3))
    ]
    return {
        "protocolSection": {
            "identificationModule": {
                "nctId": nct,
                "briefTitle": f"{product} in {' or '.join(conds[:2])}",
                "officialTitle": (
                    f"A {' / '.join(PHASE_WORDS[p] for p in phases)} Study of {product}, "
                    f"an {platform} Aimed at {target}, in Participants With {conds[0]}"
                ),
            },
            "statusModule": {"overallStatus": rng.choice(STATUSES)},
            "sponsorCollaboratorsModule": {"leadSponsor": {"name": sponsor, "class": sponsor_class}},
            "descriptionModule": {"briefSummary": summary},
            "conditionsModule": {"conditions": conds},
            "designModule": {
                "studyType": "INTERVENTIONAL",
                "phases": phases,
                "designInfo": {"interventionModel": rng.choice(MODELS)},
            },
            "armsInterventionsModule": {
                "interventions": [
                    {
                        "type": "BIOLOGICAL" if "cell" in platform else "DRUG",
                        "name": product,
                        "description": f"{product} is an investigational {platform} {made}, aimed at {target}.",
                    }
                ],
                "armGroups": arms,
            },
            "eligibilityModule": {
                "eligibilityCriteria": f"Inclusion Criteria:\n\n{inclusion}\n\nExclusion Criteria:\n\n{exclusion}",
                "minimumAge": f"{fill['age']} Years",
                "sex": "ALL",
                "healthyVolunteers": False,
            },
            "contactsLocationsModule": {"locations": sites},
        },
        "snapshotInfo": {
            "partial": True,
            "retrieved": "2026-11-25",
            "note": "Synthetic record generated for the growth benchmark; not a real study.",
        },
    }


def build_corpus(
    real_corpus: Path, target_chunks: int, out: Path, seed: int = 5, chunk_tokens: int = 160, sample: int = 40
) -> dict:
    """Copy the real corpus to `out` and add synthetic trials until it holds about target_chunks.

    Chunking (sentence splitting) is slow, so only the first `sample` generated files are
    chunked to learn the chunks per file; the rest are counted from that average. The build's
    manifest then reports the exact count, which is what the benchmark tables show.
    """
    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(real_corpus, out, ignore=shutil.ignore_patterns("README*"))
    trials = out / "trials"
    chunks = float(len(chunk_documents(load_corpus(out), chunk_tokens)))
    rng = random.Random(seed)
    taken = {p.stem for p in trials.glob("*.json")}
    added, sampled_chunks = 0, 0
    while chunks < target_chunks:
        nct = f"NCT{rng.randint(10**7, 10**8 - 1):08d}"
        if nct in taken:
            continue
        taken.add(nct)
        path = trials / f"{nct}.json"
        path.write_text(json.dumps(synthetic_trial(rng, nct), indent=2), encoding="utf-8")
        added += 1
        if added <= sample:
            n = len(chunk_documents(load_trial_documents(path), chunk_tokens))
            sampled_chunks += n
            chunks += n
        else:
            chunks += sampled_chunks / sample
    return {"files_added": added, "estimated_chunks": round(chunks)}
