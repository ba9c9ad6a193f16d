async def test_embedded_system_answers_health(api):
    response = await api.http.get("/ready")
    assert response.status_code == 200
    assert response.json()["checks"] == {
        "registry": "ok",
        "exchange": "ok",
        "signature": "ok",
        "archive": "ok",
    }
