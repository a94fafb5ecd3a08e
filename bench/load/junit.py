"""The JUnit XML of a load run: one test case per run check and per ``--assert`` target.

Written with junitparser (a maintained JUnit/xUnit library) rather than by hand, so the
element and attribute names, counts and escaping are what CI servers parse. A failed run
check (:mod:`bench.load.verdict`) or a missed target is a ``failure`` with its message; a
passed one carries its measured value in ``system-out``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from junitparser import Failure, JUnitXml, TestCase, TestSuite

from bench.load.assertions import TargetResult
from bench.load.verdict import RunCheck

SUITE = "aurora-bench load"


def _case(name: str, classname: str, passed: bool, message: str) -> TestCase:
    case = TestCase(name, classname=classname)
    if passed:
        case.system_out = message
    else:
        failure = Failure(message)
        failure.text = message
        case.result = [failure]
    return case


def write_junit(
    path: Path,
    checks: Sequence[RunCheck],
    results: Sequence[TargetResult],
    suite_name: str = SUITE,
) -> Path:
    """Write the run checks (class ``<suite>.run``) and targets (``<suite>.targets``)."""
    suite = TestSuite(suite_name)
    for check in checks:
        suite.add_testcase(_case(check.name, f"{suite_name}.run", check.passed, check.message))
    for result in results:
        suite.add_testcase(
            _case(result.target.text, f"{suite_name}.targets", result.passed, result.message)
        )
    suite.update_statistics()  # type: ignore[no-untyped-call]
    xml = JUnitXml()
    xml.add_testsuite(suite)
    path.parent.mkdir(parents=True, exist_ok=True)
    xml.write(str(path), pretty=True)
    return path
