"""The attack pack judges endpoints: it passes a correct one and names the hole in a bad one.

Each test here runs once per case (the plugin parametrises ``sjti_attack``), against an
endpoint simulated by a ``send`` function over the real verifiers.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from sjti import BoundaryVerifier, ConfigurationError, InvalidSignatureError, UserVerifier
from sjti.cache import CachedKeys
from sjti.stores import MemorySecretStore
from sjti.testing import (
    ATTACKS,
    AttackAcceptedError,
    AttackCase,
    ControlRefusedError,
    EndpointCrashedError,
    Kit,
    UnexpectedStatusError,
    select_attacks,
)

EXPECTED_NAMES = [
    "good-token",
    "expired",
    "not-yet-valid",
    "wrong-issuer",
    "wrong-audience",
    "alg-none",
    "hs256-with-public-key",
    "unknown-kid",
    "tampered-signature",
    "app-key-stretched-exp",
    "app-key-added-claims",
    "app-key-without-sjti",
    "other-users-key",
    "revoked-user",
    "revoked-device",
    "deleted-user",
]


def both_layers(verifier: UserVerifier, store: MemorySecretStore) -> Callable[[str], int]:
    """A correct endpoint: both layers, key looked up by sub; a refusal raises TokenError."""
    keys = CachedKeys(store)

    def send(token: str) -> int:
        verifier.verify_with(token, keys.get)
        return 200

    return send


def status_of(check: Callable[[str], object], refused: int = 401) -> Callable[[str], int]:
    """An HTTP-like endpoint: 200 when ``check`` passes, ``refused`` when it raises."""

    def send(token: str) -> int:
        try:
            check(token)
        except Exception:
            return refused
        return 200

    return send


def case(name: str, kit: Kit) -> AttackCase:
    return AttackCase(next(a for a in ATTACKS if a.name == name), kit)


def test_the_pack_has_every_case_the_issue_lists_in_order() -> None:
    """The ids are the report users read: renaming or dropping one is a visible change."""
    assert [attack.name for attack in ATTACKS] == EXPECTED_NAMES


def test_boundary_selection_keeps_the_control_and_the_key_only_cases() -> None:
    """A gateway test runs exactly the cases the application keys alone can refuse."""
    assert [a.name for a in select_attacks("boundary")] == EXPECTED_NAMES[:9]
    assert select_attacks("all") == ATTACKS


def test_an_unknown_layer_is_a_configuration_error() -> None:
    """A typo in the marker must not silently run fewer (or no) cases."""
    with pytest.raises(ConfigurationError):
        select_attacks("users")


def test_a_correct_endpoint_passes_every_case(
    sjti_attack: AttackCase, sjti_verifier: UserVerifier, sjti_store: MemorySecretStore
) -> None:
    """Both layers with a read-through lookup refuse every attack and accept the controls."""
    sjti_attack.check(both_layers(sjti_verifier, sjti_store))


def test_the_same_endpoint_over_http_statuses_passes_every_case(
    sjti_attack: AttackCase, sjti_verifier: UserVerifier, sjti_store: MemorySecretStore
) -> None:
    """Statuses work like raised TokenErrors: 401 is a refusal, 200 an acceptance."""
    keys = CachedKeys(sjti_store)
    sjti_attack.check(status_of(lambda token: sjti_verifier.verify_with(token, keys.get)))


def test_an_endpoint_that_accepts_everything_fails_every_attack_by_name(
    sjti_attack: AttackCase,
) -> None:
    """The failure names the attack the endpoint let through."""
    if sjti_attack.layer == "control":
        sjti_attack.check(lambda token: 200)
        return
    with pytest.raises(AttackAcceptedError) as excinfo:
        sjti_attack.check(lambda token: 200)
    assert (excinfo.value.attack, excinfo.value.status) == (sjti_attack.name, 200)
    assert str(excinfo.value).startswith(f"[{sjti_attack.name}] the endpoint accepted")


def test_an_endpoint_that_refuses_everything_fails_every_case(sjti_attack: AttackCase) -> None:
    """Refusing the good token is not security: without the control every attack would pass."""
    with pytest.raises(ControlRefusedError) as excinfo:
        sjti_attack.check(lambda token: 401)
    assert (excinfo.value.attack, excinfo.value.status) == (sjti_attack.name, 401)


def test_a_boundary_only_endpoint_fails_exactly_the_user_layer_cases(
    sjti_attack: AttackCase, sjti_boundary: BoundaryVerifier
) -> None:
    """Signature and claims checks alone are not revocation-aware: the pack says which hole."""
    send = status_of(sjti_boundary.verify)
    if sjti_attack.layer == "user":
        with pytest.raises(AttackAcceptedError) as excinfo:
            sjti_attack.check(send)
        assert excinfo.value.attack == sjti_attack.name
    else:
        sjti_attack.check(send)


def test_a_500_is_not_a_refusal(sjti_kit: Kit, sjti_boundary: BoundaryVerifier) -> None:
    """A crash on a bad token is a bug of its own (DESIGN: never a 500), not a pass."""
    send = status_of(sjti_boundary.verify, refused=500)
    with pytest.raises(UnexpectedStatusError) as excinfo:
        case("expired", sjti_kit).check(send)
    assert (excinfo.value.attack, excinfo.value.status) == ("expired", 500)


def test_other_refusal_statuses_can_be_declared(
    sjti_kit: Kit, sjti_boundary: BoundaryVerifier
) -> None:
    """An API that answers 403 passes when it says so, and fails when it does not."""
    send = status_of(sjti_boundary.verify, refused=403)
    case("wrong-audience", sjti_kit).check(send, refused={401, 403})
    with pytest.raises(UnexpectedStatusError):
        case("wrong-audience", sjti_kit).check(send)


def test_a_send_that_raises_is_a_crash_with_its_cause(sjti_kit: Kit) -> None:
    """An exception other than a TokenError is the endpoint (or the client) crashing."""

    def send(token: str) -> int:
        raise KeyError("sub")

    with pytest.raises(EndpointCrashedError) as excinfo:
        case("good-token", sjti_kit).check(send)
    assert isinstance(excinfo.value.__cause__, KeyError)
    assert excinfo.value.status is None


def test_a_raised_token_error_is_a_refusal(sjti_kit: Kit) -> None:
    """Non-HTTP endpoints (a consumer, a verifier) refuse by raising a TokenError."""

    def send(token: str) -> int:
        raise InvalidSignatureError()

    with pytest.raises(ControlRefusedError) as excinfo:
        case("tampered-signature", sjti_kit).check(send)
    assert excinfo.value.status is None


def test_responses_are_read_through_their_status_code(sjti_kit: Kit) -> None:
    """httpx, Flask and Django responses all carry ``status_code``."""

    class Response:
        def __init__(self, status_code: int) -> None:
            self.status_code = status_code

    with pytest.raises(AttackAcceptedError):
        case("revoked-user", sjti_kit).check(lambda token: Response(200))


@pytest.mark.parametrize("answer", [None, "200", True, 200.0])
def test_a_send_returning_no_status_is_a_configuration_error(sjti_kit: Kit, answer: object) -> None:
    """A send that forgets to return the status must not count as accepted or refused."""
    with pytest.raises(ConfigurationError):
        case("good-token", sjti_kit).check(lambda token: answer)  # type: ignore[arg-type,return-value]


@pytest.mark.parametrize("refused", [set(), {200}, {401, 204}, {True}])
def test_refused_statuses_must_be_non_success_statuses(sjti_kit: Kit, refused: set[int]) -> None:
    """Declaring a 2xx as a refusal would make every attack pass."""
    with pytest.raises(ConfigurationError):
        case("good-token", sjti_kit).check(lambda token: 200, refused=refused)


@pytest.mark.parametrize("sjti_devices", [None])
def test_unavailable_cases_skip_with_their_reason(sjti_kit: Kit) -> None:
    """Called directly (outside the fixture), an unavailable case still skips, never passes
    (here: an app that declares no per-device revocation)."""
    with pytest.raises(pytest.skip.Exception, match="per-device revocation"):
        case("revoked-device", sjti_kit).check(lambda token: 200)
