"""What a user's pytest run reports: ids per attack, the marker, overrides, skip reasons.

Each test runs a small user test suite with pytester, in this process (the plugin comes
from the installed entry point, as in a user's project).
"""

from __future__ import annotations

import textwrap

import pytest

from .test_attack_pack import EXPECTED_NAMES

pytest_plugins = ["pytester"]

CORRECT_APP = textwrap.dedent(
    """
    import pytest
    from sjti.cache import CachedKeys

    @pytest.fixture
    def send(sjti_verifier, sjti_store):
        keys = CachedKeys(sjti_store)

        def send(token):
            sjti_verifier.verify_with(token, keys.get)
            return 200

        return send
    """
)


def run(pytester: pytest.Pytester, test: str, conftest: str = "") -> pytest.HookRecorder:
    pytester.makeconftest(CORRECT_APP + textwrap.dedent(conftest))
    pytester.makepyfile(test_app=textwrap.dedent(test))
    return pytester.inline_run("-p", "no:cacheprovider")


def test_each_case_is_a_test_named_after_its_attack(pytester: pytest.Pytester) -> None:
    """``-k revoked`` or a CI report line points straight at the attack."""
    passed, skipped, failed = run(
        pytester, "def test_me(sjti_attack, send):\n    sjti_attack.check(send)\n"
    ).listoutcomes()
    ran = [report.nodeid for report in [*passed, *skipped]]
    assert sorted(ran) == sorted(f"test_app.py::test_me[{name}]" for name in EXPECTED_NAMES)
    assert failed == []


def test_the_boundary_marker_collects_only_the_key_only_cases(pytester: pytest.Pytester) -> None:
    """A gateway's test runs the control and the boundary cases; nothing is skipped."""
    test = """
        import pytest

        @pytest.mark.sjti_attacks(layer="boundary")
        def test_gateway(sjti_attack, send):
            sjti_attack.check(send)
    """
    passed, skipped, failed = run(pytester, test).listoutcomes()
    assert [r.nodeid for r in passed] == [
        f"test_app.py::test_gateway[{name}]" for name in EXPECTED_NAMES[:9]
    ]
    assert (skipped, failed) == ([], [])


@pytest.mark.parametrize(
    "marker", ['sjti_attacks(layer="users")', 'sjti_attacks("boundary")', "sjti_attacks(skip=1)"]
)
def test_a_bad_marker_is_a_collection_error_not_fewer_cases(
    pytester: pytest.Pytester, marker: str
) -> None:
    """A typo must stop the run: silently testing less is the failure this kit prevents."""
    test = f"""
        import pytest

        @pytest.mark.{marker}
        def test_gateway(sjti_attack, send):
            sjti_attack.check(send)
    """
    pytester.makeconftest(CORRECT_APP)
    pytester.makepyfile(test_app=textwrap.dedent(test))
    result = pytester.runpytest("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(["*ConfigurationError: *sjti_attacks*"])


def test_the_marker_is_registered_for_strict_markers(pytester: pytest.Pytester) -> None:
    """Users run --strict-markers too; the plugin declares its marker."""
    pytester.makeconftest(CORRECT_APP)
    pytester.makepyfile(
        test_app=(
            "import pytest\n\n@pytest.mark.sjti_attacks(layer='all')\n"
            "def test_me(sjti_attack, send):\n    sjti_attack.check(send)\n"
        )
    )
    result = pytester.runpytest("-p", "no:cacheprovider", "--strict-markers")
    result.assert_outcomes(passed=16)


def test_overrides_flow_through_and_unavailable_cases_say_why(pytester: pytest.Pytester) -> None:
    """An HMAC app key and a store of the app's own: the cases that cannot apply skip with
    the reason and what to override, and every other case still runs."""
    conftest = """
        from sjti.stores import MemorySecretStore

        class AppStore:
            # the app's own store: the plugin does not know how to delete its users
            def __init__(self):
                self._inner = MemorySecretStore()

            def __getattr__(self, name):
                return getattr(self._inner, name)

        @pytest.fixture
        def sjti_algorithm():
            return "HS256"

        @pytest.fixture
        def sjti_store():
            return AppStore()
    """
    recorder = run(
        pytester, "def test_me(sjti_attack, send):\n    sjti_attack.check(send)\n", conftest
    )
    passed, skipped, failed = recorder.listoutcomes()
    reasons = {
        report.nodeid.split("[")[1].rstrip("]"): report.longrepr[2]  # type: ignore[index]
        for report in skipped
    }
    assert sorted(reasons) == ["deleted-user", "hs256-with-public-key"]
    assert "override sjti_delete_user" in reasons["deleted-user"]
    assert "symmetric" in reasons["hs256-with-public-key"]
    assert (len(passed), failed) == (14, [])


def test_sjti_attack_is_parametrised_by_the_plugin_only(pytester: pytest.Pytester) -> None:
    """A hand-made parametrisation, or a dynamic request, cannot run an arbitrary case."""
    pytester.makepyfile(
        test_own_params=(
            "import pytest\n\n"
            "@pytest.mark.parametrize('sjti_attack', ['expired'], indirect=True)\n"
            "def test_own_params(sjti_attack):\n    pass\n"
        ),
        test_dynamic="def test_dynamic(request):\n    request.getfixturevalue('sjti_attack')\n",
    )
    result = pytester.runpytest("-p", "no:cacheprovider", "--continue-on-collection-errors")
    result.stdout.fnmatch_lines_random(
        [
            "*duplicate parametrization of 'sjti_attack'*",
            "*ConfigurationError: sjti_attack is parametrised by the sjti plugin only*",
        ]
    )
    result.assert_outcomes(failed=1, errors=1)
