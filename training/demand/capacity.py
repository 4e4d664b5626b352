"""Account-manager callback capacity per region and day, from staffing and service load.

Account managers spend part of each day on escalated service contacts; what is left is
available for proactive callbacks. The service-load forecast (P90 by default: plan for a
busy week, not an average one) says how much of the day escalations will take.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from training.demand.settings import Staffing


def callback_capacity(forecast: pd.DataFrame, staffing: Staffing) -> pd.DataFrame:
    """Callbacks available per region and working day of the forecast weeks.

    A week's forecast service contacts are spread evenly over its working days; each
    escalated contact takes `minutes_per_escalation` of an account manager's time, and
    every remaining whole `minutes_per_callback` is one callback.
    """
    load = forecast[forecast["series"] == "service_load"]
    working = sorted(set(staffing.working_days))
    rows = []
    for week in load.itertuples(index=False):
        managers = staffing.per_region.get(week.region, staffing.account_managers)
        contacts_per_day = getattr(week, staffing.plan_for) / max(len(working), 1)
        escalation_minutes = (
            contacts_per_day * staffing.escalation_share * staffing.minutes_per_escalation
        )
        available = managers * staffing.hours_per_day * 60 - escalation_minutes
        callbacks = int(np.floor(max(available, 0.0) / staffing.minutes_per_callback))
        for offset in working:
            rows.append(
                {
                    "region": week.region,
                    "date": (week.week_start + pd.Timedelta(days=offset)).normalize(),
                    "account_managers": managers,
                    "service_contacts_forecast": contacts_per_day,
                    "escalation_minutes": escalation_minutes,
                    "callbacks_available": callbacks,
                }
            )
    columns = [
        "region", "date", "account_managers", "service_contacts_forecast",
        "escalation_minutes", "callbacks_available",
    ]  # fmt: skip
    return pd.DataFrame(rows, columns=columns).sort_values(["date", "region"], ignore_index=True)
