"""GET /api/v1/workflows[/<id>]: what the loaded definitions say."""

from __future__ import annotations

from flask.testing import FlaskClient

from tests.app.conftest import AUTH


def test_list_has_every_seed_workflow(client: FlaskClient) -> None:
    response = client.get("/api/v1/workflows", headers=AUTH)

    assert response.status_code == 200
    ids = [w["id"] for w in response.get_json()["data"]["workflows"]]
    assert ids == sorted(ids)
    assert {"order-processor", "notification-sender", "inventory-updater"} <= set(ids)
    assert "ecommerce-order-flow" in ids


def test_get_shows_triggers_with_schemas_and_tasks_with_transitions(client: FlaskClient) -> None:
    response = client.get("/api/v1/workflows/ecommerce-order-flow", headers=AUTH)

    assert response.status_code == 200
    workflow = response.get_json()["data"]
    assert (workflow["id"], workflow["version"]) == ("ecommerce-order-flow", "1.0.0")
    [trigger] = workflow["triggers"]
    assert trigger["name"] == "order.created"
    assert "customerEmail" in trigger["schema"]["required"]
    assert trigger["schema"]["properties"]["customerEmail"]["format"] == "email"
    tasks = {t["id"]: t for t in workflow["tasks"]}
    assert workflow["tasks"][0]["id"] == "validate-order"
    assert tasks["validate-order"]["on_success"] == "check-inventory"
    assert tasks["validate-order"]["on_error"] == "send-error-notification"
    assert tasks["validate-order"]["uses"] == {"kind": "agent", "id": "order-processor"}
    assert tasks["send-confirmation"]["final"] is True


def test_unknown_workflow_is_404(client: FlaskClient) -> None:
    response = client.get("/api/v1/workflows/nope", headers=AUTH)
    assert response.status_code == 404
    assert "nope" in response.get_json()["error"]["message"]
