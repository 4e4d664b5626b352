"""The simulator's saved state: what the months after an export continue from.

Plain numpy arrays (`np.savez`, loaded without pickle: a world folder from elsewhere can
hold no code), one file per customer block and one for the network.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from features.lifecycle.simulator.network import Network

STATE_DIR = "state"
NETWORK_STATE = "network.npz"


def block_state_file(block: int) -> str:
    return f"block-{block:05d}.npz"


def save_arrays(path: Path, arrays: dict[str, np.ndarray]) -> None:
    with path.open("wb") as handle:
        # numpy's stubs type **kwds as the allow_pickle flag
        np.savez_compressed(handle, **arrays)  # type: ignore[arg-type]


def load_arrays(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as data:
        return {name: data[name] for name in data.files}


def network_state(network: Network, promotions: np.ndarray, as_of: int) -> dict[str, np.ndarray]:
    """What the network's next month continues from."""
    events = network.events
    running = events[events["end"] > as_of]
    sites = network.sites
    return {
        "site_region": network.site_region,
        "x_km": sites["x_km"].to_numpy(),
        "y_km": sites["y_km"].to_numpy(),
        "base_load": network.base_load,
        "base_drop": network.base_drop,
        "ageing_factor": network.ageing_factor,
        "ageing_days_left": network.ageing_days_left,
        "outage_hours": network.outage_hours,
        "drop_rate": network.drop_rate,
        "outage_anchor": network.outage_anchor,
        "promotions": promotions,
        "next_event": np.array(int(events["event"].max()) + 1 if len(events) else 0),
        **{f"open_{c}": running[c].to_numpy() for c in ("event", "site", "start", "end", "hours")},
        **{f"open_{c}": running[c].to_numpy().astype(str) for c in ("cause", "severity")},
    }
