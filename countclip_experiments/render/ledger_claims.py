"""What the confirmatory ledger (``results/ledger.json``) says of its runs, for the claims
blocks: each registered run's attempts and the wall time they took (the CPU budget
docs/protocol.md states)."""

from __future__ import annotations

from datetime import datetime

from countclip_experiments.ledger import STAMP
from countclip_experiments.render.claims import Facts


def attempts(entry: dict) -> list[tuple[datetime, datetime | None, str]]:
    """A ledger entry's attempts: (start, end or None where the run was killed outright, how it
    ended), from its start, each resumption and its end."""
    when = lambda text: None if text is None else datetime.strptime(text, STAMP)  # noqa: E731
    resumed = entry.get("resumed") or []
    starts = [entry["started_at"], *(r["at"] for r in resumed)]
    ends = [(r["previous_end"], r["previous_status"]) for r in resumed]
    ends.append((entry.get("finished_at"), entry["status"]))
    return [(when(a), when(b), how) for a, (b, how) in zip(starts, ends, strict=True)]


def confirmatory_budget(facts: Facts) -> str:
    """How long each registered confirmatory run took, attempt by attempt (from the ledger)."""
    if not facts.ledger:
        return "No confirmatory run has been registered yet."
    texts = []
    for entry in facts.ledger:
        spans = attempts(entry)
        timed = [(b - a).total_seconds() / 3600 for a, b, _ in spans if b is not None]
        shown = "; ".join(
            f"{a:%Y-%m-%d %H:%M} to "
            + (f"{b:%H:%M} ({how})" if b else "no end recorded (still running, or killed outright)")
            for a, b, how in spans
        )
        done = entry["status"] == "finished"
        texts.append(
            f"`{entry['experiment']}` (ledger entry `{entry['id']}`, seeds "
            f"{', '.join(map(str, entry['seeds']))}) {'finished' if done else 'has not finished'}"
            f" after {len(spans)} attempt{'s' if len(spans) > 1 else ''} on {entry['host']} "
            f"({shown}): {sum(timed):.1f} h of wall time"
            + (" recorded" if len(timed) < len(spans) else "")
            + ("." if done else " so far; it is resumed with `--resume`.")
        )
    return " ".join(texts)
