"""The gateway's proxy keeps the services' internal routes out of reach, however the path is spelt."""

from __future__ import annotations

from tests.helpers import Api, assert_problem

# --- the internal credential check -----------------------------------------------------------


async def test_internal_credential_check_is_not_reachable_through_the_gateway(api: Api) -> None:
    client = await api.agency_client()
    credentials = {"client_id": client.client_id, "client_secret": client.client_secret}
    for path, code in [
        ("/internal/v1/credentials/verify", "not_found"),
        ("/v1/internal/v1/credentials/verify", "route_not_found"),
    ]:
        response = await api.http.post(path, json=credentials, headers=client.auth)
        body = assert_problem(response, 404, code)
        assert "scopes" not in body


async def test_encoded_dot_segments_do_not_reach_internal_routes(api: Api) -> None:
    client = await api.agency_client()
    response = await api.http.post(
        "/v1/agencies/%2e%2e/%2e%2e/internal/v1/credentials/verify",
        json={"client_id": client.client_id, "client_secret": client.client_secret},
        headers=client.auth,
    )
    assert response.status_code == 404
    assert not response.json()["instance"].startswith("/internal/")


async def test_small_answers_are_sent_whole_and_large_ones_streamed_byte_for_byte(api: Api) -> None:
    """The gateway reads an answer up to BUFFERED_ANSWER_BYTES whole, and streams a larger one:
    both arrive exactly as the service sent them, with their length."""
    import os

    from gateway.proxy import BUFFERED_ANSWER_BYTES
    from services.demo.pdf import make_pdf
    from tests.helpers import send_ok

    sender, recipient = await api.agency_client(), await api.agency_client()
    small = make_pdf(["nho"])
    large = make_pdf(["lon"]) + os.urandom(BUFFERED_ANSWER_BYTES + 4096)
    sent = await send_ok(
        api, sender, [recipient], files=[("nho.pdf", small, "application/pdf"), ("lon.pdf", large, "application/pdf")]
    )
    for attachment, content in zip(sent["attachments"], (small, large), strict=True):
        response = await api.http.get(
            f"/v1/documents/{sent['id']}/attachments/{attachment['id']}", headers=recipient.auth
        )
        assert response.status_code == 200 and response.content == content
        assert int(response.headers["content-length"]) == len(content)
    listed = await api.http.get("/v1/inbox", headers=recipient.auth)  # a small JSON answer
    assert listed.status_code == 200 and listed.json()["items"][0]["document_id"] == sent["id"]
    assert int(listed.headers["content-length"]) == len(listed.content)


async def test_the_proxy_route_answers_its_methods_only_with_the_gateways_own_problems(api: Api) -> None:
    """The proxy is a plain ASGI route (no FastAPI parameters): a method it does not forward is
    refused 405 with the methods it does in ``Allow`` (HEAD too, which Starlette would add to GET),
    unless a route of the same path takes it; an error it raises reaches the app's handlers —
    problem+json, rate-limit and security headers, the request id — as one raised in a FastAPI
    route does; its requests are labelled with its path in the metrics."""
    from gateway.proxy import PROXY_METHODS

    client = await api.agency_client()
    for method in ("HEAD", "OPTIONS", "TRACE"):
        response = await api.http.request(method, "/v1/documents", headers=client.auth)
        assert response.status_code == 405, method
        assert response.headers["allow"] == ", ".join(PROXY_METHODS) == "GET, POST, PUT, PATCH, DELETE"
        assert response.headers["content-type"] == "application/problem+json"
    for method in ("OPTIONS", "HEAD"):  # a route of the same path that takes the method answers first
        token = await api.http.request(method, "/v1/auth/token")
        assert (token.status_code, token.headers["allow"]) == (405, "POST"), method
    missing = await api.http.get("/v1/nothing-answers-this", headers=client.auth)
    body = assert_problem(missing, 404, "route_not_found")
    assert body["instance"] == "/v1/nothing-answers-this"
    assert missing.headers["x-request-id"] and missing.headers["x-content-type-options"] == "nosniff"
    unauthenticated = await api.http.get("/v1/inbox", headers={"Authorization": "Bearer not-a-token"})
    assert_problem(unauthenticated, 401, "unauthorized")
    assert unauthenticated.headers["www-authenticate"].startswith("Bearer")
    listed = await api.http.get("/v1/inbox", headers=client.auth)
    assert listed.status_code == 200 and listed.json()["items"] == []
    metrics = (await api.http.get("/metrics")).text  # the gateway's requests labelled by the route's template
    assert 'requests_total{method="GET",route="/v1/{path:path}",service="gateway",status="200"}' in metrics
    assert 'requests_total{method="HEAD",route="/v1/{path:path}",service="gateway",status="405"}' in metrics
