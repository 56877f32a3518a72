"""Policy stage: the one place where a reply's kind is decided, and the reply assembled.

Order: unreadable input; risks by the safety policy's precedence (emergencies never wait for a
search); attempts to change the rules; personal decisions (care team, plus the general cited
facts); distress; then a cited answer, or an honest "the sources don't cover that".
"""

from __future__ import annotations

import time

from bot.answer import notices
from bot.query import Query
from bot.reply import Reply, Retrieved
from bot.retrieval.questions import suggestions
from bot.safety import replies
from bot.safety.policy import DECISION, EMERGENCIES, REPLY_KIND, SUPPORT
from bot.settings import Settings


class Policy:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def settled(self, q: Query) -> bool:
        """Decided before any search: unreadable input, emergencies, attempts to change the rules."""
        risk = q.risk
        return bool(q.problem) or (risk is not None and (risk.category in EMERGENCIES or risk.injection))

    def __call__(self, q: Query, started: float) -> Reply:
        s = self.settings
        risk = q.risk
        comp = q.composition
        common = {}
        if q.hits:
            common = {
                "resolved_question": q.resolved,
                "evidence": round(float(q.extra.get("answerable", 0.0)), 4),
                "retrieved": tuple(
                    Retrieved(
                        h.chunk.id,
                        h.chunk.metadata["source_id"],
                        h.chunk.metadata.get("section", ""),
                        round(h.score, 5),
                    )
                    for h in q.hits
                ),
            }

        def reply(kind: str, reason: str, parts, citations=(), follow_ups=()) -> Reply:
            return Reply(
                question=q.raw if isinstance(q.raw, str) else "",
                parts=tuple(parts),
                kind=kind,
                citations=tuple(citations),
                disclaimer=s.disclaimer_for(kind),
                latency_ms=(time.perf_counter() - started) * 1000.0,
                reason=reason,
                timings_ms=q.timings,
                follow_ups=tuple(follow_ups),
                **common,
            )

        if q.problem:
            return reply(
                "invalid",
                q.problem,
                [notices.invalid(q.problem, s.safety, len(q.raw) if isinstance(q.raw, str) else 0)],
            )
        if risk is not None and risk.category in EMERGENCIES:
            kind, reason = REPLY_KIND[risk.category]
            car_t = replies.mentions_car_t([q.cleaned, *q.user_turns])
            said = risk.found | {risk.carried}
            found = [c for c in EMERGENCIES if c in said and c != risk.category]
            return reply(kind, reason, replies.emergency([risk.category, *found], s.safety, car_t))
        if risk is not None and risk.injection and risk.category != DECISION:
            return reply("out_of_scope", "injection", [notices.out_of_scope("injection")])
        has_facts = comp is not None and not comp.empty
        quoted = {(c.hit.chunk.id, c.j) for c in q.chosen}
        offer = suggestions(q.matches, quoted)
        if risk is not None and risk.category == DECISION:
            parts = replies.decision(has_facts) + (list(comp.quotes) if has_facts else [])
            reason = "injection_dose" if risk.injection else "personal"
            return reply("medical_advice", reason, parts, comp.citations if has_facts else (), offer)
        if risk is not None and risk.category == SUPPORT:
            return reply("support", "distress", [replies.for_category(SUPPORT, s.safety)])
        if q.extra.get("unclear"):
            return reply("not_found", "unclear", [notices.unclear()], follow_ups=offer)
        if not has_facts:
            # Nothing answers it: is it about this subject at all? (learned with the floor)
            if q.extra.get("in_scope", 0.0) < s.answer.min_in_scope:
                return reply("out_of_scope", "off_topic", [notices.out_of_scope("off_topic")])
            return reply("not_found", "", [notices.not_found()], follow_ups=offer)
        return reply("answer", "", comp.quotes, comp.citations, offer)
