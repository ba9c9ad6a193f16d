"""The embedded system through the gateway: health and readiness, each service's operations endpoints, one
OpenAPI document."""


async def test_embedded_system_answers_health(api):
    response = await api.http.get("/ready")
    assert response.status_code == 200
    assert response.json()["checks"] == {
        "broker": "ok",
        "registry": "ok",
        "exchange": "ok",
        "signature": "ok",
        "archive": "ok",
    }


async def test_embedded_mode_exposes_each_services_operations_endpoints(api):
    for name in ("registry", "exchange", "signature", "archive"):
        assert (await api.http.get(f"/services/{name}/health")).json() == {"status": "ok", "service": name}
        assert (await api.http.get(f"/services/{name}/ready")).status_code == 200
        metrics = await api.http.get(f"/services/{name}/metrics")
        assert "lienthong_http_requests_total" in metrics.text
    missing = await api.http.get("/services/nope/health")
    assert missing.status_code == 404 and missing.json()["code"] == "not_found"


async def test_one_openapi_document_with_problem_answers_and_no_dangling_refs(api):
    import json

    schema = (await api.http.get("/openapi.json")).json()
    assert "/v1/documents" in schema["paths"] and "/v1/agencies/{code}" in schema["paths"]
    assert "Problem" in schema["components"]["schemas"]
    errors = schema["paths"]["/v1/documents"]["post"]["responses"]["422"]
    assert list(errors["content"]) == ["application/problem+json"]
    text = json.dumps(schema)
    refs = {part.split('"')[0] for part in text.split('"$ref": "#/components/schemas/')[1:]}
    assert refs <= set(schema["components"]["schemas"]), refs - set(schema["components"]["schemas"])


async def test_ready_shows_the_outbox_and_leaves_out_excluded_checks(api):
    ready = (await api.http.get("/services/exchange/ready")).json()
    assert ready["checks"] == {"database": "ok", "broker": "ok", "outbox": "ok"}
    assert set(ready["details"]["outbox"]) >= {"pending", "oldest_pending_seconds", "stuck"}
    # Kubernetes' probes leave the broker and the outbox out; the gateway passes the exclusion on
    answer = await api.http.get("/ready", params={"exclude": ["broker", "outbox"]})
    assert answer.status_code == 200 and "broker" not in answer.json()["checks"]
    metrics = (await api.http.get("/services/exchange/metrics")).text
    for name in ("lienthong_outbox_pending", "lienthong_outbox_oldest_pending_seconds", "lienthong_outbox_stuck"):
        assert f'{name}{{service="exchange"}}' in metrics
    assert 'lienthong_outbox_publish_failures_total{service="exchange"} 0.0' in metrics
