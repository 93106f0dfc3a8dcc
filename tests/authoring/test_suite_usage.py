"""How the suite is run: an explicit backend, no vcpuhp-null needed, no stray plugins."""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

import pytest

import vcpuhp.testing
from conftest import HERE, install_entry_points

PLAIN = ("-p", "no:cacheprovider")


def test_without_a_backend_the_suite_is_a_usage_error(suite_project: pytest.Pytester) -> None:
    result = suite_project.runpytest_subprocess(*PLAIN)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*the vcpuhp conformance suite needs the backend to test: "
                                 "pytest --vcpuhp-backend=NAME (installed backends: *null*"])


def test_an_unknown_backend_is_a_usage_error_listing_the_installed_ones(
    suite_project: pytest.Pytester,
) -> None:
    result = suite_project.runpytest_subprocess("--vcpuhp-backend=nosuch", *PLAIN)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*No vcpuhp backend named 'nosuch'. Installed backends: *"])


def test_tests_that_are_not_the_suite_need_no_backend(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_other="def test_nothing_to_do_with_vcpuhp():\n    pass\n")
    result = pytester.runpytest_subprocess(*PLAIN)
    assert result.ret == pytest.ExitCode.OK


def test_the_testing_package_never_imports_vcpuhp_null() -> None:
    root = Path(vcpuhp.testing.__file__).parent
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            assert not any(n.split(".")[0] == "vcpuhp_null" for n in names), path


def test_the_suite_runs_where_vcpuhp_null_cannot_be_imported(
    suite_project: pytest.Pytester,
) -> None:
    shutil.copy(HERE / "threaded_backends.py", suite_project.path / "threaded_backends.py")
    install_entry_points(suite_project.path, "threaded", {"vcpuhp.backends": {
        "threaded-ok": "threaded_backends:Threaded"}})
    suite_project.makeconftest("import sys\nsys.modules['vcpuhp_null'] = None  # not installed\n")
    result = suite_project.runpytest_subprocess("--vcpuhp-backend=threaded-ok", *PLAIN)
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    assert result.parseoutcomes()["passed"] >= 40


REFUSE_ALL = '''
from vcpuhp import hookimpl


@hookimpl
def vcpuhp_device_add_allowed(machine, slot, driver, device_id):
    return "refuse-all: no CPU may be plugged here"
'''

CONTROL = '''
import pytest
from vcpuhp import MachineConfig, PolicyRefused, VirtMachine


def test_the_policy_plugin_is_installed_and_refuses_by_default():
    with VirtMachine(MachineConfig.build("cpus=1,maxcpus=2", accel="null")) as machine:
        with pytest.raises(PolicyRefused, match="refuse-all"):
            machine.device_add("max-arm-cpu", "c1", **{"core-id": 1})
'''


@pytest.fixture
def with_policy_plugin(suite_project: pytest.Pytester) -> pytest.Pytester:
    """The suite beside an installed plugin that refuses every device_add."""
    suite_project.makepyfile(refuse_all=REFUSE_ALL, test_control=CONTROL)
    install_entry_points(suite_project.path, "refuse-all", {"vcpuhp.plugins": {
        "refuse-all": "refuse_all"}})
    return suite_project


def test_an_installed_policy_plugin_does_not_reach_the_suite(
    with_policy_plugin: pytest.Pytester,
) -> None:
    result = with_policy_plugin.runpytest_subprocess(
        "--vcpuhp-backend=null", "-k", "control or round_trip or racing or again", *PLAIN)
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    assert result.parseoutcomes()["passed"] == 5


def test_the_suite_loads_a_plugin_when_asked(with_policy_plugin: pytest.Pytester) -> None:
    result = with_policy_plugin.runpytest_subprocess(
        "--vcpuhp-backend=null", "--vcpuhp-plugin=refuse-all", "-k", "round_trip", *PLAIN)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*device_add refused by policy: refuse-all*"])
