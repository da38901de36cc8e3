"""The attack pack against BoundaryMiddleware, a gateway that is not revocation-aware.

It passes the boundary cases; run with the whole pack it must fail, and name exactly the
user-layer cases, the holes a gateway alone leaves open.
"""

from __future__ import annotations

import asyncio
import textwrap

import httpx
import pytest

from sjti import BoundaryVerifier
from sjti.asgi import BoundaryMiddleware, Receive, Scope, Send
from sjti.testing import AttackCase, bearer

pytest_plugins = ["pytester"]

USER_LAYER_CASES = {  # each case's name and what the endpoint let through
    "app-key-stretched-exp": "a token whose exp was stretched with the app key",
    "app-key-added-claims": "a token given roles with the app key",
    "app-key-without-sjti": "a token stripped of sjti with the app key",
    "other-users-key": "a token for one user bound to another user's key",
    "revoked-user": "a token issued before its user was revoked",
    "revoked-device": "a token of a device that was signed out",
    "deleted-user": "a token of a deleted user",
}


async def ok(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def get(app: BoundaryMiddleware, token: str) -> httpx.Response:
    async def call() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            return await client.get("/", headers=bearer(token))

    return asyncio.run(call())


@pytest.mark.sjti_attacks(layer="boundary")
def test_the_middleware_refuses_every_boundary_attack(
    sjti_attack: AttackCase, sjti_boundary: BoundaryVerifier
) -> None:
    """Expired, foreign, unsigned, confused and forged tokens stop at the gateway."""
    app = BoundaryMiddleware(ok, sjti_boundary)
    sjti_attack.check(lambda token: get(app, token))


GATEWAY_TEST = textwrap.dedent(
    """
    import asyncio

    import httpx

    from sjti.asgi import BoundaryMiddleware
    from sjti.testing import bearer


    async def ok(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


    def test_gateway(sjti_attack, sjti_boundary):
        app = BoundaryMiddleware(ok, sjti_boundary)

        async def get(token):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
                return await client.get("/", headers=bearer(token))

        sjti_attack.check(lambda token: asyncio.run(get(token)))
    """
)


def test_the_whole_pack_fails_a_gateway_and_names_each_user_layer_hole(
    pytester: pytest.Pytester,
) -> None:
    """A boundary-only endpoint accepts revoked, deleted and app-key-forged tokens: the
    report lists each as a failed case under its name, and nothing else fails."""
    pytester.makepyfile(test_gateway=GATEWAY_TEST)
    passed, skipped, failed = pytester.inline_run("-p", "no:cacheprovider").listoutcomes()
    crashes = {
        report.nodeid: report.longrepr.reprcrash.message  # type: ignore[union-attr]
        for report in failed
    }
    assert crashes == {
        f"test_gateway.py::test_gateway[{name}]": (
            f"sjti.testing.AttackAcceptedError: [{name}] "
            f"the endpoint accepted {USER_LAYER_CASES[name]} (HTTP 200)"
        )
        for name in USER_LAYER_CASES
    }
    assert len(passed) == 9
    assert skipped == []
