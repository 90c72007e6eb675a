"""Chart builders skip plotly's validation for speed: what they build must pass it unchanged."""

import json
from datetime import UTC, date, datetime, timedelta

import plotly.graph_objects as go
import plotly.io as pio
import pytest

from dashboard.charts import deployments as deployment_charts
from dashboard.charts import nodes as node_charts
from dashboard.charts import operator as operator_charts
from services.deployments.schemas import DailyCost, DeploymentEventRow
from services.nodes.service import MetricPoint, UptimeDay
from services.stats.overview import DayPoint, RegionCapacity

START = datetime(2026, 3, 28, 22, 0, tzinfo=UTC)  # across a daylight-saving change in Europe


def _figures() -> dict[str, go.Figure]:
    points = [MetricPoint(START + timedelta(minutes=5 * i), 10.0 + i % 50, 40.5, 70.25, 1.0, 2.0) for i in range(300)]
    days = [UptimeDay(date(2026, 3, 1) + timedelta(days=k), None if k < 3 else 0.5 + k / 62) for k in range(31)]
    events = [
        DeploymentEventRow(START, "created", "pending", "", "uma"),
        DeploymentEventRow(START + timedelta(minutes=2), "placed", "running", "", "system"),
        DeploymentEventRow(START + timedelta(hours=5), "note", None, "", "uma"),
        DeploymentEventRow(START + timedelta(days=1), "stopped", "stopped", "", "uma"),
        DeploymentEventRow(START + timedelta(days=2), "started", "running", "", "uma"),
    ]
    costs = [DailyCost(START.replace(hour=0) + timedelta(days=k), 1234 * k) for k in range(5)]
    day_points = [DayPoint(date(2026, 3, 1) + timedelta(days=k), 10_000 + k) for k in range(10)]
    capacity = [RegionCapacity("eu-central", 10, 100, 20, 400, 3), RegionCapacity("us-east", 0, 0, 0, 0, 0)]
    tz = "Europe/Berlin"
    return {
        "utilisation raw": node_charts.utilisation(points, tz),
        "utilisation hourly": node_charts.utilisation(points, tz, bucket_seconds=3600),
        "utilisation empty": node_charts.utilisation([], None, bucket_seconds=300),
        "uptime": node_charts.uptime(days),
        "status timeline": deployment_charts.status_timeline(events, START + timedelta(days=3), tz),
        "cost per day": deployment_charts.cost_per_day(costs, "USD", tz),
        "cost per day EUR": deployment_charts.cost_per_day(costs, "EUR", "UTC"),
        "revenue": operator_charts.revenue_per_day(day_points, day_points[:3], "USD"),
        "deployments per day": operator_charts.deployments_per_day(day_points),
        "capacity": operator_charts.capacity_by_region(capacity),
    }


@pytest.mark.parametrize("name", list(_figures()))
def test_chart_passes_plotly_validation_unchanged(name):
    fig = _figures()[name]
    spec = json.loads(pio.to_json(fig, validate=False))
    validated = go.Figure(fig.to_dict())  # raises on an unknown property or a bad value
    assert json.loads(pio.to_json(validated, validate=False)) == spec


def test_times_are_shown_in_the_viewers_timezone():
    points = [MetricPoint(START, 1.0, 2.0, 3.0, 0.0, 0.0)]
    fig = node_charts.utilisation(points, "Europe/Berlin")
    assert fig.data[0].x[0].startswith("2026-03-28T23:00:00+01:00")
