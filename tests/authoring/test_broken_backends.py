"""The conformance suite catches each deliberately broken backend, naming the broken rule.

Each broken backend of ``broken_backends.py`` is installed (as an entry
point) into a throw-away project whose only test file is the one line a
backend author writes, and the suite's check for that rule is run on it in a
fresh process: it must fail, and the failure must quote the rule.
"""

from __future__ import annotations

import pytest
from broken_backends import BROKEN

PLAIN = ("-p", "no:cacheprovider")
FAST = ("--vcpuhp-timeout-scale=0.05", *PLAIN)


@pytest.mark.parametrize("name", [n for n, (_c, k, _t) in BROKEN.items() if k])
def test_the_suite_fails_a_broken_backend_naming_the_rule(
    broken_project: pytest.Pytester, name: str,
) -> None:
    _cls, selector, words = BROKEN[name]
    result = broken_project.runpytest_subprocess(f"--vcpuhp-backend={name}", "-k", selector,
                                                 *FAST)
    output = result.stdout.str()
    assert result.ret == pytest.ExitCode.TESTS_FAILED, output
    outcomes = result.parseoutcomes()
    assert outcomes.get("failed", 0) + outcomes.get("errors", 0) >= 1, outcomes
    assert " ".join(words.split()) in " ".join(output.split()), output


def test_the_correct_threaded_backend_passes_the_checks_the_broken_ones_fail(
    broken_project: pytest.Pytester,
) -> None:
    selectors = " or ".join(k for _c, k, _t in BROKEN.values() if k)
    result = broken_project.runpytest_subprocess("--vcpuhp-backend=threaded-ok", "-k",
                                                 selectors, *PLAIN)
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    outcomes = result.parseoutcomes()
    assert outcomes["passed"] >= 10, outcomes


def test_the_whole_suite_passes_on_the_correct_threaded_backend(
    broken_project: pytest.Pytester,
) -> None:
    result = broken_project.runpytest_subprocess("--vcpuhp-backend=threaded-ok", *PLAIN)
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    outcomes = result.parseoutcomes()
    assert outcomes["passed"] >= 40 and outcomes.get("failed", 0) == 0, outcomes
