"""Two error shapes, documented: RFC 6749 on the OAuth endpoints, RFC 9457 problems
everywhere else, each with a stable code; and the OpenAPI document says so."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from .harness import PASSWORD, Server, bearer, login, register

PROBLEM = "application/problem+json"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    started = Server(tmp_path_factory.mktemp("shapes"), {"SJTI_MAX_BODY_BYTES": "4096"})
    yield started
    started.stop()


@pytest.fixture
def client(server: Server) -> Iterator[httpx.Client]:
    with server.client() as opened:
        yield opened


def assert_problem(answer: httpx.Response, status: int, code: str) -> dict[str, object]:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == PROBLEM
    body: dict[str, object] = answer.json()
    assert (body["type"], body["status"], body["code"]) == ("about:blank", status, code)
    assert isinstance(body["title"], str)
    return body


def test_unknown_route_and_method_are_problems(client: httpx.Client) -> None:
    assert_problem(client.get("/nope"), 404, "not_found")
    assert_problem(client.put("/me"), 405, "method_not_allowed")


def test_conflict_and_schema_errors_are_problems_without_the_input(client: httpx.Client) -> None:
    register(client, "shape-alice")
    assert_problem(
        client.post("/users", json={"username": "shape-alice", "password": PASSWORD}),
        409,
        "conflict",
    )
    weak = client.post("/users", json={"username": "shape-bob", "password": "hunter2"})
    body = assert_problem(weak, 422, "invalid_request")
    assert isinstance(body["errors"], list)
    assert "hunter2" not in weak.text  # never the input back


def test_bearer_errors_are_problems_with_the_cores_code(client: httpx.Client) -> None:
    missing = client.get("/me")
    assert_problem(missing, 401, "missing_token")
    assert missing.headers["www-authenticate"] == 'Bearer realm="sjti"'
    register(client, "shape-carol")
    tokens = login(client, "shape-carol")
    assert client.post("/logout", headers=bearer(tokens)).status_code == 204
    revoked = client.get("/me", headers=bearer(tokens))
    assert_problem(revoked, 401, "revoked")
    assert 'error_description="revoked"' in revoked.headers["www-authenticate"]
    fresh = login(client, "shape-carol")
    assert_problem(
        client.get("/admin/revocations", headers=bearer(fresh)), 403, "insufficient_scope"
    )


def test_oauth_endpoints_answer_rfc_6749_never_422(client: httpx.Client) -> None:
    """`/token` without `grant_type` is a 400 invalid_request, as RFC 6749 §5.2 says."""
    answer = client.post("/token", data={"username": "x"})
    assert answer.status_code == 400
    assert answer.json() == {
        "error": "invalid_request",
        "error_description": "grant_type: Field required",
    }
    assert client.post("/revoke", data={}).json()["error"] == "invalid_request"


def test_a_too_large_body_has_the_shape_of_its_endpoint(client: httpx.Client) -> None:
    big = "x" * 5000
    assert_problem(client.post("/users", json={"username": big, "password": big}), 413, "too_large")
    answer = client.post("/token", data={"grant_type": "password", "username": big})
    assert answer.status_code == 413
    assert answer.json()["error"] == "invalid_request"


def test_openapi_declares_schemes_and_every_error_shape(client: httpx.Client) -> None:
    """The Authorize button works, and every documented error has its real shape."""
    document = client.get("/openapi.json").json()
    assert set(document["components"]["securitySchemes"]) == {"bearer", "basic"}
    me = document["paths"]["/me"]["get"]
    assert me["security"] == [{"bearer": []}]
    assert "application/problem+json" in me["responses"]["401"]["content"]
    token = document["paths"]["/token"]["post"]
    assert "422" not in token["responses"]
    assert token["responses"]["400"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/OAuthErrorOut"
    }
    introspect = document["paths"]["/introspect"]["post"]
    assert introspect["security"] == [{"basic": []}, {"bearer": []}]
    for path, operations in document["paths"].items():
        for operation in operations.values():
            for status, entry in operation["responses"].items():
                if status[0] in "45":
                    assert entry.get("content"), (path, status)
