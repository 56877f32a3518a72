"""Safety triage, run on every question before retrieval.

Rules are deliberately plain patterns: they are auditable, deterministic, fast, and no text in a
question or a source can talk them out of their job. Order matters: invalid input first, then
emergencies (self-harm, urgent symptoms), then prompt-injection attempts, then personal medical
decisions, then plainly unrelated topics. Everything else goes on to retrieval.
"""

from __future__ import annotations

import base64
import binascii
import html
import re
import unicodedata
from dataclasses import dataclass

import nh3

INVALID = "invalid"
EMERGENCY = "emergency"
MEDICAL_ADVICE = "medical_advice"
OUT_OF_SCOPE = "out_of_scope"


@dataclass(frozen=True)
class Triage:
    kind: str | None  # None: an ordinary question, go on to retrieval
    reason: str = ""  # e.g. "self_harm", "symptoms", "too_long", "injection", "dose"
    text: str = ""  # the cleaned question


def _rx(*parts: str) -> re.Pattern[str]:
    return re.compile("|".join(parts), re.IGNORECASE)


_ZERO_WIDTH = re.compile("[\u200b-\u200f\u202a-\u202e\u2060-\u2064\ufeff]")
_B64 = re.compile(r"[A-Za-z0-9+/]{16,}={0,2}")

SELF_HARM = _rx(
    r"\bkill(ing)?\s+(my|him|her|them)sel(f|ves)\b",
    r"\bsuicid",
    r"\bend(ing)?\s+(it\s+all|my\s+(own\s+)?life)\b",
    r"\btake\s+my\s+(own\s+)?life\b",
    r"\b(wants?|wanted|wanna|going|ready)\s+to\s+die\b",
    r"\bwanna\s+die\b",
    r"\bdon'?t\s+want\s+to\s+(live|be\s+alive|be\s+here|wake\s+up)\b",
    r"\b(hurt|harm|cut)(ting)?\s+(my|him|her)sel(f|ves)\b",
    r"\bself[-\s]?harm",
    r"\b(no\s+reason\s+to\s+live|better\s+off\s+dead|not\s+worth\s+living)\b",
    r"\boverdos(e|ing)\s+on\s+purpose\b",
    r"\bhow\s+many\b.{0,40}\b(to\s+)?(overdose|kill\s+(me|myself)|die)\b",
    r"\b(take|swallow)\s+all\s+(my|of\s+my|the)\s+(pills|meds|medication|tablets)\b",
    r"\bnot\s+want\s+to\s+(live|be\s+alive)\b|\bgive\s+up\s+on\s+life\b",
)

SYMPTOM = _rx(
    r"\bfever(s|ish)?\b",
    r"\b(high|spiking)\s+temp(erature)?\b",
    r"\btemp(erature)?\s+(is\s+|of\s+|was\s+|at\s+|reads\s+|hit\s+)?(3[89]|4[0-2]|10[0-5])",
    r"\b(chills|rigors|shaking\s+chills)\b",
    r"\bconfus(ed|ion)\b",
    r"\bdisorient",
    r"\b(can'?t|cannot|can\s+not|unable\s+to|trouble|difficulty|hard\s+to|struggling\s+to)\s+"
    r"(speak|talk|breath|breathe|breathing|speaking|talking|wake|stay\s+awake|find\s+words)",
    r"\bslurr(ed|ing)\b",
    r"\bshort(ness)?\s+of\s+breath\b",
    r"\bbreathless",
    r"\bseizure|\bconvuls|\bfitting\b",
    r"\bchest\s+pain|\bpain\s+in\s+(my|his|her)\s+chest",
    r"\bbleed(ing|s)?\b|\bblood\s+in\s+(my|his|her|the)\s+(urine|stool|pee|poop|vomit)|\bcoughing\s+(up\s+)?blood",
    r"\b(passed|passing)\s+out\b|\bfaint(ed|ing)?\b|\bunconscious\b|\bunresponsive\b",
    r"\b(won'?t|will\s+not|not)\s+wak(e|ing)\s+up\b",
    r"\bsevere\s+headache\b",
    r"\btremor|\bshaking\s+uncontrollabl",
)

# Self-harm words that are only a crisis when said about oneself or someone close.
SELF_HARM_PERSONAL = _rx(r"\boverdos(e|ing)\b", r"\b(hurt|harm)\s+myself\b")

PERSONAL = _rx(
    r"\b(i|i'm|im|i've|ive|i'd|me|my|mine|we|our|us)\b",
    r"\b(he|she|he's|she's|his|her|they're)\b",
    r"\b(husband|wife|partner|mom|mum|mother|dad|father|son|daughter|brother|sister|friend|child|kid|baby|grandma|grandpa|patient\s+is)\b",
    r"\b(right\s+now|tonight|since\s+(the|my|his|her)\s+infusion)\b",
)

INJECTION = _rx(
    r"\b(ignore|disregard|forget|override|bypass)\b.{0,40}\b(instructions?|rules?|prompts?|guidelines|directions|polic(y|ies)|restrictions|safety|disclaimer)\b",
    r"\bsystem\s+prompt\b",
    r"\byou\s+are\s+now\b",
    r"\b(pretend|act|behave)\s+(to\s+be|you\s+are|as\s+(if|a|an|my))\b",
    r"\brole[-\s]?play\b",
    r"\b(developer|dan|god|jailbreak)\s+mode\b|\bjailbreak",
    r"\bnew\s+instructions\b",
    r"\b(reveal|show|print|repeat)\s+(me\s+)?(your|the)\s+(system\s+)?(prompt|instructions|rules)\b",
    r"\b(without|no|remove|drop|skip)\s+(the\s+|your\s+|any\s+)?disclaimers?\b",
    # A few other languages: "ignore the instructions" in Spanish, French, German, Italian, Portuguese.
    r"忽略.{0,20}(指令|说明|规则|提示)|無視|無视",
    r"\bignor(a|e|ez|iere|ieren|ar)\b.{0,40}\b(instrucciones|instructions|anweisungen|istruzioni|instru[cç][oõ]es|regeln|reglas|r[eè]gles)\b",
)

MEDICAL_ADVICE_RX = _rx(
    r"\b(should|shud|shuld|shoud|sould|shld)\s+(i|we|my|he|she|they|mom|dad)\b",
    r"\b(is|would|will)\b.{0,60}\b(better|best|right|safe|good|worth\s+it|a\s+good\s+idea)\s+for\s+(me|my|him|her|us|them)\b",
    r"\b(better|best|right|safer)\s+(option|choice|treatment)\s+for\s+(me|my|him|her|us)\b",
    r"\bdos(e|es|age|ages|ing|is|ierung)\b|\bdoze\b|\bdoseage\b|\bposolog|\bmg\b|\bmilligrams?\b|剂量|用量|\b用药|\bhow\s+(much|many)\s+(\w+\s+){0,3}(should|do|can|to)\s+(i|he|she|we)\s+take\b",
    r"\b(stop|quit|start|skip|pause|switch|change|increase|decrease|reduce)\s+(taking\s+)?(my|his|her|our|the|this)\s+(\w+\s+){0,2}(treatment|medication|medicine|meds|drugs?|chemo|therapy|pills?|regimen|steroids?)\b",
    r"\b(stop|quit)\s+taking\b",
    r"\bhow\s+much\s+(\w+\s+){0,3}(is|are|was|were|should\s+be)\s+(given|used|taken|prescribed|administered|infused)\b",
    r"\b(am\s+i|is\s+(my|he|she)\b.{0,30}|are\s+we)\s+(eligible|a\s+(good\s+)?candidate|qualified)\b",
    r"\b(do|would|could|will)\s+(i|we|he|she|my\s+\w+)\s+qualify\b",
    r"\b(can|could|may)\s+(i|we|my\s+\w+|he|she)\s+(join|enrol|enroll|sign\s+up|participate|get\s+into|be\s+in|get|take|have|receive|try)\b",
    r"\bhow\s+long\s+(do|will|would)\s+(i|he|she|we|my\s+\w+)\s+(have|live|survive)\b",
    r"\b(my|our)\s+(chances|prognosis|odds|life\s+expectancy)\b",
    r"\b(what|which)\s+(treatment|trial|drug|therapy|option)\s+(should|would\s+you\s+recommend|do\s+you\s+recommend)\b",
    r"\brecommend\b.{0,30}\b(for\s+me|to\s+me|for\s+my)\b",
    r"\b(prescribe|diagnose)\s+(me|my)\b",
    r"\b(best|top|recommended|safest)\s+(hospital|doctor|oncologist|treatment|therapy|cancer\s+center|center|centre|clinic|option|drug|medicine)s?\b",
)

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

# Other diseases: news about them is not this article's subject.
OTHER_DISEASE = _rx(
    r"alzheimer|dementia|parkinson|diabetes|covid|coronavirus|influenza|\bflu\b|asthma|arthritis|\bhiv\b|aids\b",
    r"autism|migraine|obesity|heart\s+disease|stroke|hepatitis|measles|malaria|tuberculosis|psoriasis|eczema",
)


_MD_IMAGE = re.compile(r"!\[[^\]]*\]\([^)]*\)")
_MD_LINK = re.compile(r"\[([^\]]*)\]\((?:[^()]|\([^)]*\))*\)")
_URL = re.compile(r"\b(?:https?|javascript|data|vbscript):\S+", re.IGNORECASE)
_CODES = re.compile(r"\b(n?ct)[\s-]+(\d{3,8})\b", re.IGNORECASE)


def clean(text: str) -> str:
    """The words of a question: markup, links and images removed, codes rejoined (ct 0596)."""
    text = unicodedata.normalize("NFKC", text)
    text = _ZERO_WIDTH.sub("", text)
    if "<" in text or "&" in text:
        text = html.unescape(nh3.clean(text, tags=set()))
    text = _MD_IMAGE.sub(" ", text)
    text = _MD_LINK.sub(r"\1", text)
    text = _URL.sub(" ", text)
    text = _CODES.sub(lambda m: m.group(1).upper() + m.group(2), text)
    return re.sub(r"\s+", " ", text).strip()


def _decoded_payloads(text: str) -> str:
    """Text hidden in Base64 runs, so an encoded instruction is judged like a plain one."""
    out = []
    for run in _B64.findall(text):
        padded = run + "=" * (-len(run) % 4)
        try:
            raw = base64.b64decode(padded, validate=True)
            decoded = raw.decode("utf-8")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            continue
        if decoded and sum(ch.isprintable() for ch in decoded) / len(decoded) > 0.9:
            out.append(decoded)
    return " ".join(out)


def has_control_chars(text: str) -> bool:
    # Lone surrogates (Cs) are not text either: the tokenizer and the HTML sanitizer raise on them.
    return any(
        (cat := unicodedata.category(ch)) == "Cs" or (cat == "Cc" and ch not in "\n\r\t") for ch in text
    )


def in_domain(text: str) -> bool:
    """Does the question touch health, this disease or this article at all?"""
    return bool(DOMAIN.search(text))


def triage(question: str, max_chars: int) -> Triage:
    if question is None or not isinstance(question, str):
        return Triage(INVALID, "empty")
    if len(question) > max_chars:
        return Triage(INVALID, "too_long")
    if has_control_chars(question):
        return Triage(INVALID, "control_chars")
    text = clean(question)
    if not text or not any(ch.isalnum() for ch in text):
        return Triage(INVALID, "empty", text)
    # Safety patterns see the raw text too, so nothing hidden in markup escapes them.
    probe = f"{text} {question} {_decoded_payloads(text)}"
    if SELF_HARM.search(probe):
        return Triage(EMERGENCY, "self_harm", text)
    if SELF_HARM_PERSONAL.search(probe) and PERSONAL.search(probe):
        return Triage(EMERGENCY, "self_harm", text)
    if SYMPTOM.search(probe) and PERSONAL.search(probe):
        return Triage(EMERGENCY, "symptoms", text)
    if MEDICAL_ADVICE_RX.search(probe):
        return Triage(MEDICAL_ADVICE, "injection_dose" if INJECTION.search(probe) else "personal", text)
    if INJECTION.search(probe):
        return Triage(OUT_OF_SCOPE, "injection", text)
    if (OFF_TOPIC.search(text) or OTHER_DISEASE.search(text)) and not CORE.search(text):
        return Triage(OUT_OF_SCOPE, "off_topic", text)
    return Triage(None, "", text)


PLANTED = _rx(
    r"\b(tell|instruct|advise|inform)\s+(the\s+)?(users?|patients?|people|readers?|everyone)\s+(to|that)\b",
    # An order about the reader's own treatment: "stop taking their chemotherapy", "double your dose".
    r"\b(stop|quit|discontinue|skip|miss|double|triple|halve|increase|decrease|reduce|raise|lower|change)"
    r"\s+(taking\s+|using\s+)?(your|their|his|her|all|any)\s+(\w+\s+){0,2}"
    r"(treatments?|medications?|medicines?|meds|drugs?|chemo\w*|therap(y|ies)|doses?|dosage|pills?|infusions?)\b",
    r"\b(assistant|chatbot|ai|model|bot|llm)\s*(:|\b(must|should|will)\b)",
    r"\bnote\s+(to|for)\s+(the\s+)?(ai|assistants?|chatbots?|bots?|models?|llms?)\b",
    r"\b(if\s+you\s+are|as)\s+an?\s+(ai|assistant|chatbot|language\s+model|llm)\b",
    r"\b(omit|remove|drop|leave\s+out|skip|hide|delete)\s+(the\s+|your\s+|any\s+)?(disclaimers?|citations?|sources?)\b",
)


def looks_planted(sentence: str) -> bool:
    """A source sentence that speaks to the bot or orders readers about their treatment.

    Such text is never quoted: a poisoned document cannot turn into advice in our voice.
    """
    return bool(INJECTION.search(sentence) or PLANTED.search(sentence))
