"""The ledger's core: a claim, its verdict words, and how the ledger prints.

Each claim (numbered as in the project's claims list, docs/claims.md) has the value it states,
the value ninlab computes, and a verdict:
  holds          the computation agrees with the statement (exactly, or within the stated word)
  does not hold  it contradicts the statement
  differs        partly right; `computed` says how it differs
  needs a run    a statement about training: pass run directories (`ninlab claims --run DIR`)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

HOLDS, FAILS, DIFFERS, NEEDS_RUN = "holds", "does not hold", "differs", "needs a run"


@dataclass
class Claim:
    number: int
    statement: str
    stated: str
    computed: str
    verdict: str
    run: str | None = None  # the run directory the verdict comes from


def claims_table(claims: list[Claim]) -> str:
    """One block per claim: number, verdict, statement; then stated and computed values."""
    lines = []
    for c in claims:
        lines.append(f"{c.number:>2}  {c.verdict.upper():<13}  {c.statement}")
        lines.append(f"    stated:   {c.stated}")
        lines.append(f"    computed: {c.computed}")
        if c.run:
            lines.append(f"    run:      {c.run}")
    counts = {v: sum(c.verdict == v for c in claims) for v in (HOLDS, FAILS, DIFFERS, NEEDS_RUN)}
    lines.append("")
    lines.append(", ".join(f"{n} {v}" for v, n in counts.items()))
    return "\n".join(lines)


def claims_dicts(claims: list[Claim]) -> list[dict]:
    return [asdict(c) for c in claims]
