"""Reading an Autobahn TestSuite fuzzingclient report: which case ids wstest meant to run, and
per server how many cases ended in each verdict and how many closed uncleanly.

Pure functions over the files wstest writes (`index.json`, one `<agent>_case_<id>.json` per
case, and its own stdout), so they can be tested on small hand-written fixtures
(conformance/testdata/) without Python 2 or a server.

How a case is counted (Autobahn's `behavior` is the case verdict, `behaviorClose` the verdict on
the closing handshake; the HTML report colours both):

* the verdict is `behavior`: OK, NON-STRICT, INFORMATIONAL, UNIMPLEMENTED or FAILED; any other
  value (wstest's obsolete NO_CLOSE, or something unknown) counts as FAILED;
* a case whose `behaviorClose` is FAILED (closed by the wrong endpoint, opening handshake never
  completed) or UNCLEAN (the spec requires a clean close and it was not) is FAILED whatever its
  `behavior`: the HTML report shows both in red. WRONG CODE and FAILED BY CLIENT (orange)
  leave the verdict alone;
* a case wstest was asked to run but that is missing from `index.json` is FAILED: wstest skips
  every remaining case of a server it cannot connect to and still exits 0;
* an unclean close is a reported case whose own report says `wasClean: false`: the closing
  handshake was not completed in both directions, or the server did not drop the TCP connection
  after it (its job, RFC 6455 section 7.1.1). Most cases do not require a clean close, so this
  is counted apart from the verdict. A case whose report file is missing or unreadable cannot
  be shown clean and counts as unclean too.
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

VERDICTS = ("OK", "NON-STRICT", "INFORMATIONAL", "UNIMPLEMENTED", "FAILED")
"""Autobahn's case verdicts, in the order they are printed."""

RED_CLOSE_BEHAVIOURS = frozenset({"FAILED", "UNCLEAN"})
"""Close verdicts that fail a case (red in Autobahn's HTML report)."""

_CASES_LINE = re.compile(r"^Cases = (\[.*\])\s*$", re.MULTILINE)


class ReportError(Exception):
    """A report or wstest log that cannot be read as expected."""


def case_key(case_id: str) -> tuple[int, ...]:
    """Sort key putting case ids in the testsuite's order ("2.10" after "2.9")."""
    try:
        return tuple(int(part) for part in case_id.split("."))
    except ValueError as err:
        raise ReportError(f"not an Autobahn case id: {case_id!r}") from err


def expected_cases(wstest_output: str) -> list[str]:
    """The case ids wstest resolved from the spec's patterns, from the `Cases = [...]` line it
    prints on start-up (its only statement of the full case list; the report holds only the
    cases that ran)."""
    match = _CASES_LINE.search(wstest_output)
    if match is None:
        raise ReportError("wstest did not print its case list (no 'Cases = [...]' line)")
    try:
        cases = ast.literal_eval(match.group(1))
    except (ValueError, SyntaxError) as err:
        raise ReportError(f"cannot read wstest's case list: {err}") from err
    if not isinstance(cases, list) or not all(isinstance(c, str) for c in cases):
        raise ReportError("wstest's case list is not a list of case ids")
    for case_id in cases:
        case_key(case_id)
    return cases


@dataclass
class Summary:
    """One server's results over the expected case set."""

    agent: str
    expected: int
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(VERDICTS, 0))
    failed: list[str] = field(default_factory=list)
    """Ids of the FAILED cases, missing ones included, in testsuite order."""
    missing: list[str] = field(default_factory=list)
    """Ids wstest was asked to run that are not in the report."""
    unclean: list[str] = field(default_factory=list)
    """Ids of the reported cases that did not close cleanly."""

    @property
    def ok(self) -> bool:
        """Whether no case failed."""
        return self.counts["FAILED"] == 0

    def line(self) -> str:
        """The one-line summary the runner prints."""
        verdicts = ", ".join(f"{self.counts[v]} {v}" for v in VERDICTS)
        return (
            f"{self.agent}: {verdicts}, {len(self.unclean)} unclean closes"
            f" ({self.expected} cases)"
        )

    def to_json(self) -> dict[str, object]:
        """The summary as JSON-ready data."""
        return {
            "agent": self.agent,
            "cases": self.expected,
            "counts": dict(self.counts),
            "unclean": len(self.unclean),
            "failed_cases": list(self.failed),
            "missing_cases": list(self.missing),
            "unclean_cases": list(self.unclean),
        }


def verdict(case: dict[str, object]) -> str:
    """One index.json entry's verdict, by the rules in the module doc."""
    behavior = case.get("behavior")
    if case.get("behaviorClose") in RED_CLOSE_BEHAVIOURS:
        return "FAILED"
    if behavior in VERDICTS:
        return str(behavior)
    return "FAILED"


def was_clean(report_dir: Path, case: dict[str, object]) -> bool:
    """Whether the case's own report says the connection closed cleanly."""
    reportfile = case.get("reportfile")
    if not isinstance(reportfile, str):
        return False
    try:
        with open(report_dir / reportfile, encoding="utf-8") as f:
            return json.load(f).get("wasClean") is True
    except (OSError, ValueError, AttributeError):
        return False


def load_index(report_dir: Path) -> dict[str, dict[str, dict[str, object]]]:
    """index.json: agent → case id → entry. A missing file means wstest ran nothing."""
    path = report_dir / "index.json"
    try:
        with open(path, encoding="utf-8") as f:
            index = json.load(f)
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as err:
        raise ReportError(f"cannot read {path}: {err}") from err
    if not isinstance(index, dict) or not all(isinstance(v, dict) for v in index.values()):
        raise ReportError(f"{path} is not a map of agents to cases")
    return index


def summarize(report_dir: Path, agent: str, expected: list[str]) -> Summary:
    """Counts one agent's verdicts in the report at `report_dir` over the `expected` case ids
    (plus any other case the report holds for it)."""
    cases = load_index(report_dir).get(agent, {})
    ids = sorted(set(expected) | set(cases), key=case_key)
    summary = Summary(agent=agent, expected=len(ids))
    for case_id in ids:
        case = cases.get(case_id)
        if case is None:
            summary.missing.append(case_id)
            outcome = "FAILED"
        else:
            outcome = verdict(case)
            if not was_clean(report_dir, case):
                summary.unclean.append(case_id)
        summary.counts[outcome] += 1
        if outcome == "FAILED":
            summary.failed.append(case_id)
    return summary
