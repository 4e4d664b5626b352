"""What the retention actions achieved: the treated against the persistent random holdout.

Every retention decision leaves one outcome row once it matures. A customer in the holdout
("control") was not sent the action the policy chose for them, so comparing the churn of the
customers who were sent action X ("policy") with the churn of the holdout customers whose
would-have-been action was X measures what X did, with nothing modelled: the holdout is
random. The exploration arm (a random eligible action) is reported beside it, alone and
pooled with the policy arm ("all sent"); its customers were not picked the way the holdout's
would-have-been action was, so that comparison is indicative only.

Pure pandas and numpy: the database, the CLI and the API call this; the page is built by
`render_results` from the same `CampaignResults`.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any, Literal

import jinja2
import markupsafe
import numpy as np
import pandas as pd

# Figures built directly, not through pyplot: no global backend is set and no figure is
# left open (see serving/report.py).
from matplotlib.figure import Figure

Horizon = Literal["30d", "60d"]

ARMS = ("policy", "exploration", "control")
# The compared treatments: the arms whose customers were sent the action.
TREATMENTS: dict[str, tuple[str, ...]] = {
    "policy": ("policy",),
    "exploration": ("exploration",),
    "all sent": ("policy", "exploration"),
}
# The columns this computation reads (the outcome column of the chosen horizon is added).
REQUIRED_COLUMNS = (
    "action_id",
    "month",
    "arm",
    "action_type",
    "offer_id",
    "segment",
    "estimated_effect",
    "customer_value",
    "cost",
    "accepted",
)
TRUTH_COLUMNS = ("true_effect", "true_pushed_away", "true_kept")
# The per-row values summed (and counted) per group, over the matured rows.
MEASURED = (
    "churned",
    "cost",
    "customer_value",
    "accepted",
    "estimated_effect",
    "true_effect",
    "true_kept",
    "true_pushed_away",
)
CONFIDENCE = 0.95
INTERVAL_METHOD = (
    "95 % intervals: Newcombe's hybrid score interval for a difference of proportions "
    "(a Wilson score interval per arm); customers kept scale it by the treated count, value "
    "kept by the treated count and their mean customer value."
)
SMALL_ARM = 30  # below this many matured rows in an arm the interval is rough
UNKNOWN = "(unknown)"

# The columns of every results table after its group column, in order.
METRIC_COLUMNS = (
    "n_treated",
    "n_control",
    "pending_treated",
    "pending_control",
    "churn_rate_treated",
    "churn_rate_control",
    "uplift",
    "uplift_low",
    "uplift_high",
    "kept",
    "kept_low",
    "kept_high",
    "cost",
    "mean_customer_value",
    "value_kept",
    "value_kept_low",
    "value_kept_high",
    "return_on_spend",
    "return_on_spend_low",
    "return_on_spend_high",
    "acceptance_rate",
    "estimated_effect",
    "estimate_in_interval",
    "truth",
    "truth_in_interval",
    "true_kept",
    "true_pushed_away",
    "note",
)

RESULTS_FILE = "campaign_results.html"  # the published page, beside the risk lists


@dataclass(frozen=True, eq=False)
class CampaignResults:
    """The comparison tables of one outcome frame at one horizon.

    Each table has a `treatment` column ("policy", "exploration", "all sent"), its group
    column (`action`, `segment` or `month`; none in `overall`) and `METRIC_COLUMNS`.
    Rates and uplifts are fractions; uplift = control churn rate - treated churn rate, so a
    positive uplift means customers kept. The truth columns are missing values unless the
    frame carried the simulator's truth (`has_truth`).
    """

    horizon: str
    decisions: int  # rows in the frame
    matured: int  # rows whose outcome at the horizon is known
    pending: int  # rows still waiting for it: left out of every figure
    arms: pd.DataFrame  # decisions, matured and pending per arm
    overall: pd.DataFrame
    by_action: pd.DataFrame
    by_segment: pd.DataFrame
    by_month: pd.DataFrame
    has_truth: bool
    notes: tuple[str, ...]

    def headline(self) -> pd.Series:
        """The policy's overall row: the engine's own choices against the holdout."""
        return self.overall.set_index("treatment").loc["policy"]


def difference_interval(
    events_a: Any, n_a: Any, events_b: Any, n_b: Any, confidence: float = CONFIDENCE
) -> tuple[np.ndarray, np.ndarray]:
    """Newcombe's hybrid score interval for p_a - p_b (method 10 of Newcombe 1998).

    Chosen over the plain normal (Wald) interval because it keeps its coverage when a rate
    is near 0 or an arm is small, and never leaves [-1, 1]. NaN where an arm is empty.
    """
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    low_a, high_a, p_a = _wilson(events_a, n_a, z)
    low_b, high_b, p_b = _wilson(events_b, n_b, z)
    difference = p_a - p_b
    low = difference - np.sqrt((p_a - low_a) ** 2 + (high_b - p_b) ** 2)
    high = difference + np.sqrt((high_a - p_a) ** 2 + (p_b - low_b) ** 2)
    return low, high


def _wilson(events: Any, n: Any, z: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The Wilson score interval of events / n, and the rate itself; NaN where n is 0."""
    events = np.asarray(events, dtype=float)
    n = np.asarray(n, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.where(n > 0, events / n, np.nan)
        scale = 1 + z**2 / n
        centre = (p + z**2 / (2 * n)) / scale
        half = z * np.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / scale
    return centre - half, centre + half, p


def campaign_results(outcomes: pd.DataFrame, horizon: Horizon = "60d") -> CampaignResults:
    """Treated against control for the same action: per action, segment, month and overall.

    Only rows whose churn outcome at the horizon is known count; the others are counted as
    pending. A group without matured treated or control rows gets NaN figures and a note.
    """
    prepared = _prepare(outcomes, horizon)
    has_truth = any(column in outcomes.columns for column in TRUTH_COLUMNS)
    exploring = bool((prepared["arm"] == "exploration").any())
    treatments = [t for t in TREATMENTS if exploring or t != "exploration"]
    tables = {key: _comparison(prepared, key, treatments) for key in ("action", "segment", "month")}
    overall = _comparison(prepared.assign(scope="all"), "scope", list(TREATMENTS))
    matured = int(prepared["matured"].sum())
    return CampaignResults(
        horizon=horizon,
        decisions=len(prepared),
        matured=matured,
        pending=len(prepared) - matured,
        arms=_arm_counts(prepared),
        overall=overall.drop(columns="scope"),
        by_action=tables["action"],
        by_segment=tables["segment"],
        by_month=tables["month"],
        has_truth=has_truth,
        notes=_notes(prepared, horizon, has_truth, exploring),
    )


def _validate(outcomes: pd.DataFrame, horizon: str) -> str:
    """The horizon's outcome column, after refusing a frame the figures would be wrong for."""
    if horizon not in ("30d", "60d"):
        raise ValueError(f"horizon must be '30d' or '60d', not {horizon!r}")
    outcome = f"churned_{horizon}"
    missing = [c for c in (*REQUIRED_COLUMNS, outcome) if c not in outcomes.columns]
    if missing:
        raise ValueError(f"outcomes lack required columns: {', '.join(missing)}")
    arms = outcomes["arm"]
    unknown = sorted({str(arm) for arm in arms[~arms.isin(ARMS)].unique()})
    if unknown:
        raise ValueError(
            f"unknown arm values: {', '.join(unknown)} (expected one of {', '.join(ARMS)})"
        )
    duplicated = outcomes["action_id"][outcomes["action_id"].duplicated()].unique()
    if len(duplicated):
        shown = ", ".join(map(str, duplicated[:5]))
        raise ValueError(f"one row per decision expected; action_id repeated: {shown}")
    return outcome


def _prepare(outcomes: pd.DataFrame, horizon: str) -> pd.DataFrame:
    """The columns the comparison needs, as numbers where they are numbers."""
    outcome = _validate(outcomes, horizon)
    churned = _numeric(outcomes[outcome], outcome)
    offer = outcomes["offer_id"]
    has_offer = offer.notna() & (offer.astype(str).str.len() > 0)
    action = offer.where(has_offer, outcomes["action_type"])
    frame = pd.DataFrame(
        {
            "arm": outcomes["arm"].astype(str),
            "action": action.fillna(UNKNOWN).astype(str),
            "segment": outcomes["segment"].fillna(UNKNOWN).astype(str),
            "month": outcomes["month"].fillna(UNKNOWN).astype(str),
            "matured": churned.notna(),
            "churned": churned,
            "estimated_effect": _numeric(outcomes["estimated_effect"], "estimated_effect"),
            "customer_value": _numeric(outcomes["customer_value"], "customer_value"),
            "cost": _numeric(outcomes["cost"], "cost").fillna(0.0),
            "accepted": _numeric(outcomes["accepted"], "accepted"),
        },
        index=outcomes.index,
    )
    for column in TRUTH_COLUMNS:
        present = column in outcomes.columns
        frame[column] = _numeric(outcomes[column], column) if present else np.nan
    if "true_kept" not in outcomes.columns:  # defined as the true effect
        frame["true_kept"] = frame["true_effect"]
    return frame.reset_index(drop=True)


def _numeric(values: pd.Series, name: str) -> pd.Series:
    """Booleans, numbers or missing values as floats (NaN where missing).

    Outcome columns arrive as bool, object (True/False/None), nullable boolean or float
    with NaN depending on the reader; anything else is a broken frame, named.
    """
    if values.dtype == object:
        values = values.where(values.notna(), np.nan)
    try:
        return pd.to_numeric(values).astype(float)
    except (TypeError, ValueError) as error:
        raise ValueError(f"column {name} holds non-numeric values: {error}") from error


def _arm_counts(prepared: pd.DataFrame) -> pd.DataFrame:
    """Decisions, matured and pending per arm, every arm listed."""
    grouped = prepared.groupby("arm")["matured"]
    counts = pd.DataFrame({"decisions": grouped.size(), "matured": grouped.sum()})
    counts = counts.reindex(list(ARMS), fill_value=0).astype(int)
    counts["pending"] = counts["decisions"] - counts["matured"]
    return counts.rename_axis("arm").reset_index()


def _side(rows: pd.DataFrame, key: str) -> pd.DataFrame:
    """One arm's per-group totals over its matured rows, and its pending count.

    Sums and counts of the matured rows' values (pending rows masked out) in one grouped
    pass: means are sum / count, so a missing value drops out of its own mean only.
    """
    measured = rows[list(MEASURED)].where(rows["matured"], axis=0)
    measured["pending"] = (~rows["matured"]).astype(int)
    grouped = measured.groupby(rows[key])
    sums, counts = grouped.sum(min_count=1), grouped.count()
    with np.errstate(divide="ignore", invalid="ignore"):
        return pd.DataFrame(
            {
                "n": counts["churned"],
                "churners": sums["churned"],
                "cost": sums["cost"],
                "mean_customer_value": sums["customer_value"] / counts["customer_value"],
                "acceptance_rate": sums["accepted"] / counts["accepted"],
                "estimated_effect": sums["estimated_effect"] / counts["estimated_effect"],
                "truth": sums["true_effect"] / counts["true_effect"],
                "true_kept": sums["true_kept"],
                "true_pushed_away": sums["true_pushed_away"],
                "pending": sums["pending"],
            }
        )


def _comparison(prepared: pd.DataFrame, key: str, treatments: Sequence[str]) -> pd.DataFrame:
    """Per treatment and group: the treated arm against the control arm of the same group."""
    control = _side(prepared[prepared["arm"] == "control"], key)
    treated_parts, control_parts = [], []
    for treatment in treatments:
        treated = _side(prepared[prepared["arm"].isin(TREATMENTS[treatment])], key)
        groups = treated.index.union(control.index)
        if key == "scope":  # overall: one row even when nothing is there
            groups = pd.Index(["all"])
        treated_parts.append(treated.reindex(groups))
        control_parts.append(control.reindex(groups))
    names = ["treatment", key]
    figures = _figures(
        pd.concat(treated_parts, keys=list(treatments), names=names),
        pd.concat(control_parts, keys=list(treatments), names=names),
    )
    return figures.reset_index()[[*names, *METRIC_COLUMNS]]


def _figures(treated: pd.DataFrame, control: pd.DataFrame) -> pd.DataFrame:
    """The metric columns from the two arms' totals, aligned on the same groups."""
    n_t = treated["n"].fillna(0).astype(int)
    n_c = control["n"].fillna(0).astype(int)
    rate_t = treated["churners"] / n_t.where(n_t > 0)
    rate_c = control["churners"] / n_c.where(n_c > 0)
    low, high = difference_interval(control["churners"], n_c, treated["churners"], n_t)
    uplift = rate_c - rate_t
    cost = treated["cost"].fillna(0.0)
    value = treated["mean_customer_value"]
    spent = cost.where(cost > 0)
    figures = pd.DataFrame(
        {
            "n_treated": n_t,
            "n_control": n_c,
            "pending_treated": treated["pending"].fillna(0).astype(int),
            "pending_control": control["pending"].fillna(0).astype(int),
            "churn_rate_treated": rate_t,
            "churn_rate_control": rate_c,
            "uplift": uplift,
            "uplift_low": low,
            "uplift_high": high,
            "kept": uplift * n_t,
            "kept_low": low * n_t,
            "kept_high": high * n_t,
            "cost": cost,
            "mean_customer_value": value,
            "value_kept": uplift * n_t * value,
            "value_kept_low": low * n_t * value,
            "value_kept_high": high * n_t * value,
        },
        index=treated.index,
    )
    for bound in ("", "_low", "_high"):
        figures[f"return_on_spend{bound}"] = (figures[f"value_kept{bound}"] - spent) / spent
    figures["acceptance_rate"] = treated["acceptance_rate"]
    figures["estimated_effect"] = treated["estimated_effect"]
    figures["estimate_in_interval"] = _inside(treated["estimated_effect"], low, high)
    figures["truth"] = treated["truth"]
    figures["truth_in_interval"] = _inside(treated["truth"], low, high)
    figures["true_kept"] = treated["true_kept"]
    figures["true_pushed_away"] = treated["true_pushed_away"]
    figures["note"] = [
        _note(t, c, p_t, p_c)
        for t, c, p_t, p_c in zip(
            n_t, n_c, figures["pending_treated"], figures["pending_control"], strict=True
        )
    ]
    return figures


def _inside(value: pd.Series, low: np.ndarray, high: np.ndarray) -> pd.Series:
    """Whether value lies in [low, high]; missing where either is unknown."""
    known = value.notna().to_numpy() & ~np.isnan(low) & ~np.isnan(high)
    inside = (value.to_numpy() >= low) & (value.to_numpy() <= high)
    return pd.Series(
        pd.arrays.BooleanArray(np.where(known, inside, False), ~known), index=value.index
    )


def _note(treated: int, control: int, pending_treated: int, pending_control: int) -> str:
    """Why a row's uplift is missing or rough; empty when it is neither."""
    if treated == 0 and control == 0:
        waiting = pending_treated + pending_control
        return f"nothing matured yet ({waiting:,} pending)" if waiting else "no rows"
    if control == 0:
        return "no matured control rows: no comparison"
    if treated == 0:
        return "no matured treated rows: no comparison"
    if min(treated, control) < SMALL_ARM:
        return f"fewer than {SMALL_ARM} matured rows in an arm: the interval is rough"
    return ""


def _notes(
    prepared: pd.DataFrame, horizon: str, has_truth: bool, exploring: bool
) -> tuple[str, ...]:
    """What a reader of the whole results must know before the figures."""
    notes = []
    pending = int((~prepared["matured"]).sum())
    if pending:
        notes.append(
            f"{pending:,} decisions have no {horizon} outcome yet: they are counted as "
            "pending and left out of every figure."
        )
    if not (prepared["arm"] == "control").any():
        notes.append("No control rows: no uplift can be measured.")
    if exploring:
        notes.append(
            "Exploration customers are compared with holdout customers whose policy action "
            "was the same; they were not chosen alike, so that comparison is indicative only."
        )
    if horizon != "60d":
        # the truth column is given for the horizon asked (`retain results` converts it);
        # the model's estimates are always of the 60-day churn
        notes.append(
            "The model's estimated effects are for churn within 60 days; read them against "
            "the 60d results."
        )
    notes.append(INTERVAL_METHOD)
    return tuple(notes)


# --- the terminal table ----------------------------------------------------------------


def _number(value: Any, form: str, missing: str = "n/a") -> str:
    """A formatted number, or `missing` for NaN/None/NA."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return missing
    return format(value, form)


def _points(value: Any, signed: bool = True) -> str:
    """A fraction as percentage points, e.g. +8.0."""
    scaled = None if _missing(value) else 100 * float(value)
    return _number(scaled, "+z.1f" if signed else "z.1f")


def _missing(value: Any) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def _interval(low: Any, high: Any) -> str:
    if _missing(low) or _missing(high):
        return "n/a"
    return f"[{_points(low)}, {_points(high)}]"


def results_table_text(results: CampaignResults) -> str:
    """A plain-text table for a terminal: per action and overall, per treatment.

    Rates and uplifts in percentage points, so a column of small differences stays legible.
    """
    columns = ["action", "sent", "treated", "control", "churn T", "churn C", "uplift pp"]
    columns += ["95% CI pp", "kept", "cost", "ROI", "model pp"]
    if results.has_truth:
        columns += ["truth pp", "in CI"]
    lines = []
    table = pd.concat(
        [
            results.by_action,
            results.overall.assign(action="all actions")[results.by_action.columns],
        ],
        ignore_index=True,
    )
    for row in table.to_dict("records"):
        cells = [
            str(row["action"]),
            str(row["treatment"]),
            f"{row['n_treated']:,}",
            f"{row['n_control']:,}",
            _points(row["churn_rate_treated"], signed=False),
            _points(row["churn_rate_control"], signed=False),
            _points(row["uplift"]),
            _interval(row["uplift_low"], row["uplift_high"]),
            _number(row["kept"], "+z,.0f"),
            _number(row["cost"], "z,.0f"),
            _number(row["return_on_spend"], "+z.2f"),
            _points(row["estimated_effect"]),
        ]
        if results.has_truth:
            inside = row["truth_in_interval"]
            cells += [_points(row["truth"]), "n/a" if _missing(inside) else str(bool(inside))]
        lines.append(cells)
    widths = [max(len(c), *(len(line[i]) for line in lines)) for i, c in enumerate(columns)]
    text = [
        f"Campaign results at {results.horizon}: {results.decisions:,} decisions, "
        f"{results.matured:,} matured, {results.pending:,} pending",
        "  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)),
        "  ".join("-" * w for w in widths),
    ]
    for line in lines:
        text.append(
            "  ".join(
                (c.ljust(w) if i < 2 else c.rjust(w))
                for i, (c, w) in enumerate(zip(line, widths, strict=True))
            )
        )
    rows = table.to_dict("records")
    notes = [f"{r['action']} ({r['treatment']}): {r['note']}" for r in rows if r["note"]]
    text += ["", *results.notes, *notes]
    return "\n".join(text).rstrip() + "\n"


# --- the page --------------------------------------------------------------------------


def _svg(figure: Figure) -> str:
    """The figure as inline SVG, without the XML prolog or the render date."""
    buffer = io.StringIO()
    metadata = {"Creator": None, "Date": None, "Format": None, "Type": None}
    figure.savefig(buffer, format="svg", bbox_inches="tight", metadata=metadata)
    text = buffer.getvalue()
    return text[text.index("<svg") :]


def _label(text: Any) -> str:
    """A label matplotlib draws as written: a '$' would otherwise start mathtext."""
    return str(text).replace("$", r"\$")


def uplift_plot(table: pd.DataFrame, key: str, treatment: str = "policy") -> str | None:
    """Measured uplift with its 95 % interval per group, the model's estimate and the truth
    beside it; None when no group has an interval to draw."""
    rows = table[(table["treatment"] == treatment) & table["uplift"].notna()]
    if rows.empty:
        return None
    labels = [_label(v) for v in rows[key]]
    position = np.arange(len(rows))
    uplift = rows["uplift"].to_numpy(dtype=float) * 100
    errors = np.vstack(
        [
            uplift - rows["uplift_low"].to_numpy(dtype=float) * 100,
            rows["uplift_high"].to_numpy(dtype=float) * 100 - uplift,
        ]
    )
    horizontal = key != "month"
    size = (6.5, 0.45 * len(rows) + 1.2) if horizontal else (max(6.5, 0.5 * len(rows)), 3.2)
    figure = Figure(figsize=size)
    axis = figure.subplots()
    place: Callable[..., Any]
    if horizontal:
        axis.errorbar(uplift, position, xerr=errors, fmt="o", color="#2c3e50", capsize=3,
                      label="measured (95 % CI)")  # fmt: skip
        axis.axvline(0, color="#999", linewidth=1)
        axis.set_yticks(position, labels)
        axis.invert_yaxis()
        axis.set_xlabel(f"uplift, percentage points of churn ({treatment} vs control)")

        def place(values: np.ndarray, **style: Any) -> None:
            axis.scatter(values, position, **style)
    else:
        axis.errorbar(position, uplift, yerr=errors, fmt="o-", color="#2c3e50", capsize=3,
                      label="measured (95 % CI)")  # fmt: skip
        axis.axhline(0, color="#999", linewidth=1)
        axis.set_xticks(position, labels, rotation=45, ha="right")
        axis.set_ylabel(f"uplift, pp ({treatment} vs control)")

        def place(values: np.ndarray, **style: Any) -> None:
            axis.scatter(position, values, **style)

    for column, style in (
        ("estimated_effect", {"marker": "D", "facecolors": "none", "edgecolors": "#e67e22"}),
        ("truth", {"marker": "x", "color": "#c0392b"}),
    ):
        values = rows[column].to_numpy(dtype=float) * 100
        if np.isfinite(values).any():
            name = "model estimate" if column == "estimated_effect" else "truth (simulated)"
            place(values, label=name, zorder=3, **style)
    axis.legend(frameon=False, fontsize=8)
    return _svg(figure)


def _format_table(table: pd.DataFrame, key: str | None) -> list[dict[str, Any]]:
    """The rows of a results table as the template shows them."""
    out = []
    for row in table.to_dict("records"):
        inside = row["truth_in_interval"]
        estimate_inside = row["estimate_in_interval"]
        out.append(
            {
                "group": "" if key is None else str(row[key]),
                "treatment": str(row["treatment"]),
                "n_treated": f"{row['n_treated']:,}",
                "n_control": f"{row['n_control']:,}",
                "pending": f"{row['pending_treated'] + row['pending_control']:,}",
                "churn_treated": _percent(row["churn_rate_treated"]),
                "churn_control": _percent(row["churn_rate_control"]),
                "uplift": _pp(row["uplift"]),
                "interval": _interval(row["uplift_low"], row["uplift_high"]),
                "kept": _number(row["kept"], "+z,.0f"),
                "kept_interval": _range(row["kept_low"], row["kept_high"], "+z,.0f"),
                "cost": _number(row["cost"], "z,.0f"),
                "value_kept": _number(row["value_kept"], "+z,.0f"),
                "roi": _number(row["return_on_spend"], "+z.2f"),
                "acceptance": _percent(row["acceptance_rate"]),
                "estimate": _pp(row["estimated_effect"]),
                "estimate_inside": _yes_no(estimate_inside),
                "truth": _pp(row["truth"]),
                "truth_inside": _yes_no(inside),
                "true_kept": _number(row["true_kept"], "+z,.0f"),
                "true_pushed_away": _number(row["true_pushed_away"], "z,.0f"),
                "note": row["note"],
                "uplift_sign": _sign(row["uplift_low"], row["uplift_high"]),
            }
        )
    return out


def _percent(value: Any) -> str:
    return "n/a" if _missing(value) else f"{100 * float(value):z.1f} %"


def _pp(value: Any) -> str:
    return "n/a" if _missing(value) else f"{_points(value)} pp"


def _range(low: Any, high: Any, form: str) -> str:
    if _missing(low) or _missing(high):
        return "n/a"
    return f"[{format(low, form)}, {format(high, form)}]"


def _yes_no(value: Any) -> str:
    return "n/a" if _missing(value) else ("yes" if bool(value) else "no")


def _sign(low: Any, high: Any) -> str:
    """A CSS class: whether the interval says the action kept customers, lost them, or neither."""
    if _missing(low) or _missing(high):
        return "unknown"
    return "kept" if low > 0 else ("lost" if high < 0 else "unclear")


def render_results(results: CampaignResults, title: str) -> str:
    """The results as one self-contained HTML page: inline styles and SVG, nothing fetched."""
    headline = results.headline()
    plots = [
        ("Uplift by action (policy vs control)", uplift_plot(results.by_action, "action")),
        ("Uplift by month (policy vs control)", uplift_plot(results.by_month, "month")),
    ]
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("serving", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    totals = results.overall.set_index("treatment")
    return environment.get_template("results.html.j2").render(
        title=title,
        results=results,
        headline=_format_table(headline.to_frame().T.assign(treatment="policy"), None)[0],
        overall=_format_table(results.overall, None),
        by_action=_format_table(results.by_action, "action"),
        by_segment=_format_table(results.by_segment, "segment"),
        by_month=_format_table(results.by_month, "month"),
        all_sent_cost=_number(totals.loc["all sent", "cost"], "z,.0f"),
        true_kept=_number(totals.loc["all sent", "true_kept"], "z,.1f"),
        true_pushed_away=_number(totals.loc["all sent", "true_pushed_away"], "z,.0f"),
        plots=[(name, markupsafe.Markup(svg)) for name, svg in plots if svg is not None],
        missing_plots=[name for name, svg in plots if svg is None],
    )
