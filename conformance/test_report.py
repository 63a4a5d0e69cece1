"""Unit tests for autobahn_report on hand-written fixtures in conformance/testdata/.

Run with `python3 -m unittest discover -s conformance` from the workspace root.

testdata/mixed/ is one report for agent "srv" with one case of every kind: each verdict, each
close verdict, a case that closed uncleanly without failing, and a case whose report file was
never written; its index.json also holds an "other" agent that must be ignored.
testdata/wstest-output.txt is wstest's start-up output naming 13 cases, one of which (9.1.1)
the report lacks.
"""

import sys
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from autobahn_report import (  # noqa: E402
    ReportError,
    Summary,
    case_key,
    expected_cases,
    summarize,
    verdict,
)

TESTDATA = Path(__file__).resolve().parent / "testdata"
MIXED = TESTDATA / "mixed"
EXPECTED = [
    "1.1.1", "1.1.2", "2.9", "2.10", "3.1", "4.1.1", "5.1", "6.4.3",
    "7.1.1", "7.1.2", "7.13.1", "9.1.1", "12.1.1",
]  # fmt: skip


class ExpectedCasesTest(unittest.TestCase):
    def test_reads_the_case_list_wstest_prints(self):
        """The `Cases = [...]` line gives every case id, in wstest's order."""
        output = (TESTDATA / "wstest-output.txt").read_text(encoding="utf-8")
        self.assertEqual(expected_cases(output), EXPECTED)

    def test_no_case_list_is_an_error(self):
        """Output without the case list (wstest died early) cannot be summarized."""
        with self.assertRaises(ReportError):
            expected_cases("Loading spec from spec.json\nTraceback (most recent call last):\n")

    def test_a_case_list_of_non_ids_is_an_error(self):
        """A `Cases =` line that is not a list of dotted numbers is rejected."""
        for line in ["Cases = ['1.1.1', 'x.2']", "Cases = [1, 2]", "Cases = ['1.1.1'"]:
            with self.subTest(line=line), self.assertRaises(ReportError):
                expected_cases(line + "\n")


class VerdictTest(unittest.TestCase):
    def test_verdicts(self):
        """`behavior` is the verdict unless the close was red; unknown verdicts fail."""
        table = [
            ("OK", "OK", "OK"),
            ("NON-STRICT", "OK", "NON-STRICT"),
            ("INFORMATIONAL", "INFORMATIONAL", "INFORMATIONAL"),
            ("UNIMPLEMENTED", "UNIMPLEMENTED", "UNIMPLEMENTED"),
            ("FAILED", "OK", "FAILED"),
            ("OK", "WRONG CODE", "OK"),
            ("OK", "FAILED BY CLIENT", "OK"),
            ("OK", "UNCLEAN", "FAILED"),
            ("NON-STRICT", "FAILED", "FAILED"),
            ("NO_CLOSE", "OK", "FAILED"),
            (None, "OK", "FAILED"),
        ]
        for behavior, close, expected in table:
            with self.subTest(behavior=behavior, close=close):
                case = {"behavior": behavior, "behaviorClose": close}
                self.assertEqual(verdict(case), expected)


class SummarizeTest(unittest.TestCase):
    def test_mixed_report_counts(self):
        """Every verdict, red closes, a missing case and unclean closes are counted exactly."""
        summary = summarize(MIXED, "srv", EXPECTED)
        self.assertEqual(summary.expected, 13)
        self.assertEqual(
            summary.counts,
            {"OK": 6, "NON-STRICT": 1, "INFORMATIONAL": 1, "UNIMPLEMENTED": 1, "FAILED": 4},
        )
        self.assertEqual(summary.failed, ["5.1", "6.4.3", "7.1.2", "9.1.1"])
        self.assertEqual(summary.missing, ["9.1.1"])
        self.assertEqual(summary.unclean, ["1.1.2", "4.1.1", "5.1", "6.4.3"])
        self.assertFalse(summary.ok)
        self.assertEqual(
            summary.line(),
            "srv: 6 OK, 1 NON-STRICT, 1 INFORMATIONAL, 1 UNIMPLEMENTED, 4 FAILED,"
            " 4 unclean closes (13 cases)",
        )

    def test_only_expected_and_reported_cases_of_the_agent_count(self):
        """Cases of another agent in the same index.json are not mixed in."""
        summary = summarize(MIXED, "other", ["1.1.1"])
        self.assertEqual(summary.expected, 1)
        self.assertEqual(summary.counts["FAILED"], 1)
        self.assertEqual(summary.unclean, ["1.1.1"])

    def test_reported_cases_beyond_the_expected_ones_still_count(self):
        """A case in the report but not in the expected list is counted, not dropped."""
        summary = summarize(MIXED, "srv", ["1.1.1"])
        self.assertEqual(summary.expected, 12)
        self.assertEqual(summary.counts["OK"], 6)
        self.assertEqual(summary.missing, [])

    def test_ok_means_no_failed_case(self):
        """NON-STRICT, INFORMATIONAL and unclean closes alone do not fail a server."""
        summary = Summary(agent="srv", expected=3)
        summary.counts.update({"OK": 1, "NON-STRICT": 1, "INFORMATIONAL": 1})
        summary.unclean = ["1.1.1"]
        self.assertTrue(summary.ok)
        summary.counts["FAILED"] = 1
        self.assertFalse(summary.ok)

    def test_no_report_means_every_case_failed(self):
        """When wstest never reached the server there is no index.json: all cases FAILED."""
        summary = summarize(TESTDATA / "no-such-report", "srv", EXPECTED)
        self.assertEqual(summary.counts["FAILED"], 13)
        self.assertEqual(summary.counts["OK"], 0)
        self.assertEqual(summary.missing, EXPECTED)
        self.assertEqual(summary.unclean, [])

    def test_a_malformed_index_is_an_error(self):
        """An index.json that is not a map of agents is reported, not counted as empty."""
        with self.assertRaises(ReportError):
            summarize(TESTDATA / "broken", "srv", EXPECTED)

    def test_json_summary(self):
        """The JSON form carries the counts and the case ids behind them."""
        data = summarize(MIXED, "srv", EXPECTED).to_json()
        self.assertEqual(data["cases"], 13)
        self.assertEqual(data["unclean"], 4)
        self.assertEqual(data["missing_cases"], ["9.1.1"])
        self.assertEqual(data["counts"]["FAILED"], 4)


class CaseKeyTest(unittest.TestCase):
    def test_numeric_order(self):
        """Case ids sort by number, part by part."""
        ids = ["10.1.1", "2.10", "1.1.10", "2.9", "1.1.2", "9.1.1"]
        self.assertEqual(
            sorted(ids, key=case_key), ["1.1.2", "1.1.10", "2.9", "2.10", "9.1.1", "10.1.1"]
        )


if __name__ == "__main__":
    unittest.main()
