"""The ledger's core: a claim, its verdict words, and how the ledger prints.

Each claim (numbered as in the project's claims list, docs/claims.md) has the value it states,
the value ninlab computes, and a verdict:
  holds           the computation agrees with the statement (exactly, or within the stated word)
  does not hold   it contradicts the statement
  differs         partly right; `computed` says how it differs
  not comparable  a run was given, but in another setting than the statement's (fewer epochs,
                  another data set or input size, part of the training images, another kind
                  of model): `computed` says how, and which run would be comparable
  needs a run     a statement about training: pass run directories (`ninlab claims --run DIR`)
A claim about training checked on several runs has a line, and a verdict, per run.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from ninlab.terminal import WIDTH, wrap

HOLDS, FAILS, DIFFERS, NEEDS_RUN = "holds", "does not hold", "differs", "needs a run"
NOT_COMPARABLE = "not comparable"
VERDICTS = (HOLDS, FAILS, DIFFERS, NOT_COMPARABLE, NEEDS_RUN)  # in the ledger's summary line


@dataclass
class Claim:
    """One line of the claims ledger: what was stated, what was computed, and the verdict."""

    number: int
    statement: str
    stated: str
    computed: str
    verdict: str
    run: str | None = None  # the run directory the verdict comes from


def claims_table(claims: list[Claim], width: int | None = WIDTH) -> str:
    """One block per claim: number, verdict, statement; then stated and computed values (and the
    run), each wrapped to `width` columns under its label (None: one line each); last, how many
    claims have each verdict."""
    pad = max(map(len, VERDICTS))
    lines = []
    for c in claims:
        head = f"{c.number:>2}  {c.verdict.upper():<{pad}}  "
        lines += wrap(c.statement, width, head, " " * len(head))
        lines += wrap(c.stated, width, "    stated:   ", " " * 14)
        lines += wrap(c.computed, width, "    computed: ", " " * 14)
        if c.run:
            lines += wrap(c.run, width, "    run:      ", " " * 14)
    counts = ", ".join(f"{sum(c.verdict == v for c in claims)} {v}" for v in VERDICTS)
    numbers = len({c.number for c in claims})
    if numbers < len(claims):
        counts += f" ({len(claims)} verdicts on {numbers} claims: one per run given)"
    lines += ["", *wrap(counts, width)]
    return "\n".join(lines)


def claims_dicts(claims: list[Claim]) -> list[dict]:
    return [asdict(c) for c in claims]
