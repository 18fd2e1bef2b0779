"""`python -m bot explain "QUESTION"`: why the matcher decided what it did, for FAQ authors.

Shows the clauses and the concepts found in them, then per candidate intent its score and the
signals behind it (similarity, coverage, the need found or what it lacks, what excluded it, the
words the intent does not know), then the decision with the thresholds.
"""
from __future__ import annotations

from bot.understanding.matcher import Matcher, Signals
from bot.understanding.verify import display


def explanation(matcher: Matcher, text: str) -> dict:
    """The matcher's reasoning on one question, as JSON-safe data."""
    signals = matcher.signals(text)
    analysis = matcher.verifier.analyse(signals.text)
    found = [{"concept": display(s.concept), "text": "".join(analysis.shown[s.start:s.end])} for s in analysis.spots]
    intents = sorted(set(signals.scores) | set(signals.verdicts), key=lambda i: -signals.scores.get(i, 0.0))
    return {
        "text": text,
        "judged": signals.text,
        "clauses": "".join(analysis.shown).split(" | ") if analysis.shown else [],
        "concepts": found,
        "candidates": [_candidate(signals, iid) for iid in intents],
        "decision": signals.match.decision,
        "intent": signals.match.intent,
        "score": signals.match.score,
        "answer_threshold": matcher.answer_threshold,
        "clarify_margin": matcher.clarify_margin,
    }


def _candidate(signals: Signals, intent_id: str) -> dict:
    """One intent's score and signals."""
    feature = signals.features.get(intent_id) or {}
    verdict = signals.verdicts.get(intent_id)
    row = {"intent": intent_id, "score": signals.scores.get(intent_id, 0.0),
           "similarity": round(feature.get("sim", 0.0), 1)}
    if feature.get("cov") is not None:
        row["word_coverage"] = round(feature["cov"], 2)
    if verdict is not None:
        row.update({"verdict": verdict.status, "need": list(verdict.need), "missing": list(verdict.missing),
                    "excluded_by": list(verdict.excluded_by), "need_coverage": round(verdict.coverage, 2),
                    "judged_words": verdict.region, "unknown_words": list(verdict.uncovered)})
    return row


def format_explanation(data: dict) -> str:
    """The explanation as text for a terminal."""
    lines = [f"question: {data['text']}"]
    if data["judged"] != data["text"]:
        lines.append(f"judged as: {data['judged']}  (second try without courtesy words)")
    lines.append("clauses: " + " | ".join(data["clauses"]))
    lines.append("concepts found: " + (", ".join(f"{c['concept']}({c['text']})" for c in data["concepts"]) or "none"))
    lines.append("candidates:")
    for row in data["candidates"]:
        coverage = f", word coverage {row['word_coverage']:.2f}" if "word_coverage" in row else ""
        lines.append(f"  {row['intent']:<24} {row['score']:>5.1f}  similarity {row['similarity']:.0f}{coverage}")
        if "verdict" in row:
            lines.append("      " + verdict_line(row))
    decision = data["decision"] + (f" {data['intent']}" if data["intent"] else "")
    lines.append(f"decision: {decision} (top {data['score']:.1f}; answer ≥ {data['answer_threshold']:.0f}, "
                 f"clarify when the lead is < {data['clarify_margin']:.0f})")
    return "\n".join(lines)


def verdict_line(row: dict) -> str:
    """What verification said about one intent, in words."""
    need = "[" + ", ".join(row["need"]) + "]"
    if row["verdict"] == "excluded":
        return "excluded: the question mentions [" + ", ".join(row["excluded_by"]) + "]"
    if row["verdict"] == "missing":
        lacking = ", ".join(row["missing"])
        return f"need not found: closest {need} lacks {lacking}" if row["need"] else "need not found"
    unknown = f"; words it does not know: {', '.join(row['unknown_words'])}" if row["unknown_words"] else ""
    return f"need {need} found in “{row['judged_words']}”, coverage {row['need_coverage']:.2f}{unknown}"
