"""Evaluate the matcher on labelled questions (`{"text", "intent"}` JSONL; intent null = out of scope).

Counting rules:
- an in-scope row (intent is an id) is correct only when the matcher's decision is "answer" AND
  its intent equals the label; "clarify" and "none" count as NOT answering, even when the right
  intent is the top candidate;
- an out-of-scope row (intent null) is rejected when the decision is anything but "answer"
  ("clarify" or "none");
- per-intent precision = correct answers of that intent / all answers of that intent (answers
  given to out-of-scope rows count against it); recall = correct answers / rows labelled with it.
"""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path


def _parse_row(raw: str, where: str) -> dict:
    """One JSONL line as {"text", "intent"}; ValueError names the file and line."""
    try:
        row = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{where}: invalid JSON: {exc.msg}") from None
    if not isinstance(row, dict):
        raise ValueError(f"{where}: expected an object with text and intent")
    text, intent = row.get("text"), row.get("intent")
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"{where}: 'text' must be a non-empty string")
    if "intent" not in row:
        raise ValueError(f"{where}: 'intent' is missing (use null for an out-of-scope question)")
    if intent is not None and (not isinstance(intent, str) or not intent.strip()):
        raise ValueError(f"{where}: 'intent' must be an intent id or null")
    return {"text": text, "intent": intent}


def read_eval_rows(path) -> list[dict]:
    """Read labelled rows from JSONL; blank lines are skipped, a bad line raises ValueError."""
    rows = []
    with Path(path).open(encoding="utf-8") as handle:
        for number, raw in enumerate(handle, start=1):
            if raw.strip():
                rows.append(_parse_row(raw, f"{path}:{number}"))
    return rows


def _matcher(kb):
    """The kb's matcher, attaching one when the kb has none yet."""
    if kb.matcher is None:
        from bot.understanding.matcher import attach_matcher

        attach_matcher(kb)
    return kb.matcher


def _ratio(num: int, den: int) -> float:
    """num/den, or 1.0 for an empty denominator (nothing to get wrong)."""
    return num / den if den else 1.0


def _outcomes(matcher, rows) -> list[tuple[dict, str | None, object]]:
    """(row, intent answered or None, the Match) for every row."""
    out = []
    for row in rows:
        result = matcher.match(row["text"])
        out.append((row, result.intent if result.decision == "answer" else None, result))
    return out


def evaluate(kb, rows) -> dict:
    """Run every row through the matcher and compute the figures (see module docstring)."""
    outcomes = _outcomes(_matcher(kb), rows)
    answered = Counter(got for _r, got, _m in outcomes if got is not None)
    labelled = Counter(r["intent"] for r, _g, _m in outcomes if r["intent"] is not None)
    correct = Counter(got for r, got, _m in outcomes if got is not None and got == r["intent"])
    wrong = [(r, got, m) for r, got, m in outcomes if got != r["intent"]]
    in_scope, out_scope = sum(labelled.values()), len(rows) - sum(labelled.values())
    rejected = sum(1 for r, got, _m in outcomes if r["intent"] is None and got is None)
    confusions = Counter((r["intent"], got) for r, got, _m in wrong)
    per_intent = {i: {"precision": _ratio(correct[i], answered[i]), "recall": _ratio(correct[i], labelled[i]),
                      "support": labelled[i], "answered": answered[i]}
                  for i in sorted(set(labelled) | set(answered))}
    return {
        "rows": len(rows), "in_scope": in_scope, "out_of_scope": out_scope,
        "top1_accuracy": _ratio(sum(correct.values()), in_scope), "oos_rejection": _ratio(rejected, out_scope),
        "per_intent": per_intent,
        "confusions": [{"expected": e, "got": g, "count": n} for (e, g), n in confusions.most_common()],
        "misses": [{"text": r["text"], "expected": r["intent"], "got": got, "decision": m.decision,
                    "score": m.score, "candidates": list(m.candidates),
                    "why": why(_matcher(kb), r["text"], r["intent"] or got)} for r, got, m in wrong],
    }


def why(matcher, text: str, intent: str | None) -> str:
    """One line of `explain` about the intent a miss concerns (expected, else the wrong answer)."""
    from bot.tools.explain import explanation, verdict_line

    if intent is None:
        return ""
    row = next((c for c in explanation(matcher, text)["candidates"] if c["intent"] == intent), None)
    if row is None:
        return f"{intent}: not a candidate (no similarity, no need)"
    return f"{intent}: " + (verdict_line(row) if "verdict" in row else f"similarity only, score {row['score']:.1f}")


def format_report(result: dict) -> str:
    """Human-readable report; its last 4 lines are the headline figures."""
    lines = [f"{'intent':<24} {'precision':>9} {'recall':>7} {'support':>7}"]
    for intent, fig in result["per_intent"].items():
        lines.append(f"{intent:<24} {fig['precision']:>9.1%} {fig['recall']:>7.1%} {fig['support']:>7}")
    if result["confusions"]:
        lines.append("confusions (expected -> got):")
        lines += [f"  {c['expected'] or '(none)'} -> {c['got'] or '(none)'}: {c['count']}"
                  for c in result["confusions"]]
    if result["misses"]:
        lines.append("misses:")
        for m in result["misses"]:
            lines.append(f"  [{m['decision']} {m['score']:.1f}] {m['text']} (expected {m['expected'] or '(none)'}, "
                         f"got {m['got'] or '(none)'}; candidates {m['candidates'][:3]})")
            lines += [f"      {m['why']}"] if m.get("why") else []
    lines += [
        f"rows: {result['rows']} ({result['in_scope']} in scope, {result['out_of_scope']} out of scope)",
        f"misses: {len(result['misses'])}",
        f"in-scope top-1 accuracy: {result['top1_accuracy']:.1%}",
        f"out-of-scope rejected: {result['oos_rejection']:.1%}",
    ]
    return "\n".join(lines)
