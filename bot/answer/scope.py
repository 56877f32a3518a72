"""Is a question about this article's subject at all? (Word lists; to be replaced by a learned floor.)"""

from __future__ import annotations

import re


def _rx(*parts: str) -> re.Pattern[str]:
    return re.compile("|".join(parts), re.IGNORECASE)


OFF_TOPIC = _rx(
    r"\bweather\b|\bforecast\b|\brecipe|\bcook(ing)?\b|\bbake\b",
    r"\b(stock|stocks|bitcoin|crypto|lottery)\b",
    r"\b(football|soccer|basketball|baseball|nba|nfl|super\s+bowl)\b",
    r"\b(write|give|show)\s+(me\s+)?(some\s+|a\s+|an\s+)?(code|program|script|poem|song|story|essay|joke|function)\b",
    r"\b(python|javascript|java|sql|html|css)\s+(code|script|function|program)\b",
    r"\b(tell\s+me\s+a\s+joke|movie|netflix|celebrity)\b",
    r"\bcapital\s+of\b|\bpresident\s+of\b|\belection\b",
    r"\btranslate\b",
)

CORE = _rx(
    r"pcl|plasma|leuk|myelom|car-?\s?t\b|\bcart\b|\bct\s?0?596|\bct\s?0?71\b|\bnct\s?\d+|carsgen|bcma|gprc5d|nkg2a",
    r"transplant|\bcrs\b|cytokine|\bmrd\b|\bscr\b|tocilizumab|lymphodeplet|kleutghen|healthtree|gvhd|graft",
)

DOMAIN = _rx(
    r"pcl|plasma|leuk|myelom|cancer|car-?\s?t\b|\bcart\b|\bcell|trial|stud(y|ies)|treat|therap|drug|medic",
    r"transplant|patient|doctor|disease|surviv|prognos|symptom|side\s+effect|\bcrs\b|bcma|gprc5d|nkg2a",
    r"\bct\s?0?596|\bct\s?0?71\b|\bnct\s?\d+|carsgen|\bfda\b|relaps|remission|\bmrd\b|\bscr\b|infusion|immun",
    r"blood|marrow|chemo|author|writer|wrote|article|kleutghen|healthtree|\bcure|\bcost|price|insurance|hospital",
    r"oncolog|hematolog|lymph|donor|graft|gvhd|eligib|enrol|criteria|phase|sponsor",
    r"\bnk\b|neutrop|thrombocyt|cytop|tocilizumab|proteasome|immunomod|cd38|antibod|\bind\b|off-the-shelf",
    r"autolog|allogen|\ballo\b|\bauto\b|\bos\b|median|diagnos|health|\bdose|approved|outcome|result|infection",
)

OTHER_DISEASE = _rx(
    r"alzheimer|dementia|parkinson|diabetes|covid|coronavirus|influenza|\bflu\b|asthma|arthritis|\bhiv\b|aids\b",
    r"autism|migraine|obesity|heart\s+disease|stroke|hepatitis|measles|malaria|tuberculosis|psoriasis|eczema",
)


def off_topic(text: str) -> bool:
    return bool((OFF_TOPIC.search(text) or OTHER_DISEASE.search(text)) and not CORE.search(text))


def in_domain(text: str) -> bool:
    return bool(DOMAIN.search(text))
