"""The daily risk list as one self-contained HTML page for marketing analysts.

No server, no internet: styles and the table's script are inline, the plots are inline SVG
drawn by matplotlib, and the table's rows travel as JSON inside the page. It opens from
disk and is what `/risk-list` serves.
"""

from __future__ import annotations

import io
import json
from collections import Counter
from typing import TYPE_CHECKING, Any

import jinja2
import markupsafe
import pandas as pd

# Figures built directly, not through pyplot: no global backend is set (a notebook
# importing this keeps its inline plots) and no figure is left open.
from matplotlib.figure import Figure

if TYPE_CHECKING:
    from serving.daily import RiskList


def _subplots(*grid: int, figsize: tuple[float, float], **options: Any) -> tuple[Figure, Any]:
    """pyplot.subplots without pyplot: a figure and its axes."""
    figure = Figure(figsize=figsize)
    return figure, figure.subplots(*grid, **options)


BAND_COLOURS = {"high": "#c0392b", "medium": "#e67e22", "low": "#7f8c8d"}
TABLE_COLUMNS = [
    ("customer_id", "Customer"),
    ("churn_probability", "Risk"),
    ("risk_band", "Band"),
    ("segment", "Segment"),
    ("region", "Region"),
    ("contract_type", "Contract"),
    ("monthly_fee", "Monthly fee"),
    ("revenue_at_risk", "Revenue at risk / month"),
    ("customer_value", "Value (expected margin)"),
    ("value_at_risk", "Value at risk"),
    ("reasons", "Why"),
    ("action", "Suggested action"),
    ("action_expected_value", "Expected value"),
]


def _svg(figure: Figure) -> str:
    buffer = io.StringIO()
    # no metadata block: it only names matplotlib and the render date
    metadata = {"Creator": None, "Date": None, "Format": None, "Type": None}
    figure.savefig(buffer, format="svg", bbox_inches="tight", metadata=metadata)
    text = buffer.getvalue()
    return text[text.index("<svg") :]  # drop the XML prolog: the SVG sits inside HTML


def risk_distribution(scored: pd.DataFrame, high: float, medium: float) -> str:
    figure, axis = _subplots(figsize=(6, 3))
    axis.hist(scored["churn_probability"], bins=50, color="#34495e")
    for threshold, band in ((medium, "medium"), (high, "high")):
        axis.axvline(
            threshold,
            color=BAND_COLOURS[band],
            linestyle="--",
            label=f"{band} from {threshold:.0%}",
        )
    axis.set_yscale("log")
    axis.set_xlabel("P(churn within 30 days)")
    axis.set_ylabel("customers (log scale)")
    axis.legend(frameon=False)
    return _svg(figure)


def risk_by(scored: pd.DataFrame, column: str) -> str:
    share = (
        scored.assign(at_risk=scored["risk_band"] != "low")
        .groupby(column)["at_risk"]
        .mean()
        .sort_values()
    )
    figure, axis = _subplots(figsize=(6, 0.35 * len(share) + 0.8))
    axis.barh([str(i) for i in share.index], share.to_numpy() * 100, color="#2c3e50")
    axis.set_xlabel(f"% of customers at risk (high or medium), by {column}")
    return _svg(figure)


def frequent_reasons(listed: pd.DataFrame, count: int = 10) -> str:
    tally: Counter[str] = Counter()
    for features in listed.get("reason_features", pd.Series(dtype=str)).dropna():
        tally.update(f for f in str(features).split(",") if f)
    common = tally.most_common(count)[::-1]
    figure, axis = _subplots(figsize=(6, 0.35 * max(len(common), 1) + 0.8))
    axis.barh(
        [name.replace("_", " ") for name, _ in common], [n for _, n in common], color="#16a085"
    )
    axis.set_xlabel("listed customers with this among their top reasons")
    return _svg(figure)


def value_at_risk_by(listed: pd.DataFrame, column: str) -> str:
    """The listed customers' value at risk (P(churn) x expected margin), summed by `column`:
    where the money is, which is not always where the most customers are."""
    total = listed.groupby(column)["value_at_risk"].sum().sort_values() if len(listed) else None
    labels = [] if total is None else [str(i) for i in total.index]
    figure, axis = _subplots(figsize=(6, 0.35 * max(len(labels), 1) + 0.8))
    axis.barh(labels, [] if total is None else total.to_numpy(), color="#8e44ad")
    axis.set_xlabel(f"value at risk of the listed customers, by {column.replace('_', ' ')}")
    return _svg(figure)


def trend(summaries: list[dict[str, Any]]) -> str:
    dates = [pd.Timestamp(s["date"]) for s in summaries]
    figure, axis = _subplots(figsize=(6, 3))
    for band in ("high", "medium"):
        axis.plot(dates, [s["at_risk"][band] for s in summaries], marker="o",
                  color=BAND_COLOURS[band], label=band)  # fmt: skip
    axis.set_ylabel("customers at risk")
    axis.legend(frameon=False)
    figure.autofmt_xdate()
    return _svg(figure)


def _money(value: float) -> str:
    return f"{value:,.0f}"


def _round(value: Any) -> float | None:
    missing = value is None or pd.isna(value)
    return None if missing else round(float(value), 2)


def _table_rows(listed: pd.DataFrame, rows: int) -> list[dict[str, Any]]:
    top = listed.head(rows)
    out = []
    for record in top.to_dict("records"):
        action = record.get("action_type")
        if action:
            detail = record.get("action_detail")
            label = f"{action.replace('_', ' ')}{f' ({detail})' if isinstance(detail, str) else ''}"
            if not record.get("action_allowed"):
                label += f" - blocked: {record.get('action_blocked_by')}"
        else:
            label = "none worth its cost"
        out.append(
            {
                key: _json_value(value)
                for key, value in {
                    "customer_id": record["customer_id"],
                    "churn_probability": round(float(record["churn_probability"]), 4),
                    "risk_band": record["risk_band"],
                    "segment": record.get("segment"),
                    "region": record.get("region"),
                    "contract_type": record.get("contract_type"),
                    "monthly_fee": _round(record.get("monthly_fee")),
                    "revenue_at_risk": _round(record.get("revenue_at_risk")),
                    "customer_value": _round(record.get("customer_value")),
                    "value_at_risk": _round(record.get("value_at_risk")),
                    "reasons": record.get("reasons") or "",
                    "action": label,
                    "action_expected_value": _round(record.get("action_expected_value")),
                }.items()
            }
        )
    return out


def _script_json(value: Any) -> str:
    """JSON to sit inside a <script> element: no raw <, > or & (a "</script>" or "<!--"
    in a value would end or derail the element), and no NaN (not JSON)."""
    text = json.dumps(value, allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _json_value(value: Any) -> Any:
    """None for anything missing (NaN, NA, NaT): the page's JSON must parse."""
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    return value.item() if hasattr(value, "item") else value


def report_plots(risk: RiskList, earlier: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """The report's plots, (title, SVG): aggregates over every customer, none naming one
    (the daily run logs them to MLflow too)."""
    bands = risk.bands
    plots = [
        ("Risk distribution", risk_distribution(risk.scored, bands.high, bands.medium)),
        ("Risk by segment", risk_by(risk.scored, "segment")),
        ("Risk by region", risk_by(risk.scored, "region")),
        ("Most frequent reasons", frequent_reasons(risk.listed)),
        ("Value at risk by contract", value_at_risk_by(risk.listed, "contract_type")),
    ]
    if earlier:
        plots.append(("Trend", trend([*earlier, risk.summary])))
    return plots


def _figure(value: Any) -> str:
    return "-" if value is None else f"{value:.3f}"


def monitoring_view(result: dict[str, Any] | None) -> dict[str, Any] | None:
    """The page's monitoring section from the latest `retain monitor` result: the features
    out of bounds (warn or alert), score drift, expected and realised performance."""
    if result is None:
        return None
    realised = result["realised"]
    return {
        "date": result["date"],
        "status": result["status"],
        "alerts": len(result["alerts"]),
        "score_psi": _figure(result["score"]["psi"]),
        "score_status": result["score"]["status"],
        "expected_roc_auc": _figure(result["expected"]["roc_auc"]),
        "reference_roc_auc": _figure(result["expected"]["reference_roc_auc"]),
        "realised_roc_auc": _figure(realised.get("roc_auc"))
        if realised.get("roc_auc") is not None
        else realised.get("note", "not known yet"),
        "scored_on": realised["scored_on"],
        "features": [
            {
                "feature": row["feature"],
                "psi": _figure(row["psi"]),
                "ks": _figure(row["ks"]),
                "wasserstein": _figure(row.get("wasserstein")),
                "missing": _figure(row.get("missing")),
                "missing_reference": _figure(row.get("missing_reference")),
                "status": row["status"],
            }
            for row in result["features"]
            if row["status"] != "ok"
        ],
    }


def render_report(
    risk: RiskList,
    earlier: list[dict[str, Any]],
    table_rows: int,
    monitoring: dict[str, Any] | None = None,
    kpis: dict[str, Any] | None = None,
    staffing: dict[str, Any] | None = None,
) -> str:
    """The page: headline figures, plots, the latest monitoring result (`monitoring`, a
    `retain monitor` result, if any), the service KPIs and agent plan (views of `retain
    kpis` and `retain staffing`, if any) and a sortable, filterable table."""
    summary = risk.summary
    actions = summary["actions"]
    plots = report_plots(risk, earlier)
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("serving", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    environment.filters["money"] = _money
    return environment.get_template("risk_list.html.j2").render(
        summary=summary,
        actions=sorted(actions.items()),
        total_cost=sum(v["cost"] for v in actions.values()),
        total_saved=sum(v["expected_saved_value"] for v in actions.values()),
        plots=[(title, markupsafe.Markup(svg)) for title, svg in plots],
        has_trend=bool(earlier),
        colours=BAND_COLOURS,
        table_rows=min(table_rows, summary["listed"]),
        rows=markupsafe.Markup(_script_json(_table_rows(risk.listed, table_rows))),
        columns=markupsafe.Markup(json.dumps(TABLE_COLUMNS)),
        monitoring=monitoring_view(monitoring),
        kpis=kpis,
        staffing=staffing,
    )
