"""Generate the retail bank's raw data, deterministically from a seed.

Customers, their card transactions, balance snapshots and credit applications with a default
label, over the 180 days before an anchor date (today at midnight UTC by default, so that the
demo's online lookups fall within the features' TTL). The same seed and anchor give the same
files, byte for byte.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

DAYS = 180


def _utc(values: object) -> pd.Series:
    return pd.Series(pd.to_datetime(values, utc=True)).astype("datetime64[us, UTC]")


def generate(out: Path, *, seed: int = 7, customers: int = 2000, anchor: datetime | None = None) -> dict[str, int]:
    """Write customers, transactions, balances and applications as Parquet under ``out``."""
    rng = np.random.default_rng(seed)
    anchor = anchor or datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    start = anchor - timedelta(days=DAYS)
    out.mkdir(parents=True, exist_ok=True)

    ids = np.arange(1, customers + 1)
    age = rng.integers(19, 80, customers)
    income = np.round(rng.lognormal(mean=10.4, sigma=0.45, size=customers), -2)
    segment = rng.choice(["mass", "affluent", "student", "small_business"], customers, p=[0.6, 0.15, 0.15, 0.1])
    signup = start - pd.to_timedelta(rng.integers(30, 3000, customers), unit="D")
    customers_df = pd.DataFrame(
        {"customer_id": ids, "signed_up_at": signup, "age": age, "income": income, "segment": segment}
    )

    # Card transactions: each customer has an activity rate and a typical ticket size; some go quiet.
    rate = rng.gamma(shape=2.0, scale=0.6, size=customers)  # transactions per day
    ticket = rng.lognormal(mean=3.3, sigma=0.5, size=customers)
    quiet_from = np.where(rng.random(customers) < 0.15, rng.integers(60, DAYS, customers), DAYS)
    counts = rng.poisson(rate * quiet_from)
    cust = np.repeat(ids, counts)
    offsets = (
        np.concatenate([rng.random(c) * q for c, q in zip(counts, quiet_from, strict=True)])
        if counts.sum()
        else np.array([])
    )
    amount = np.round(rng.lognormal(np.log(np.repeat(ticket, counts)), 0.6), 2)
    ts = pd.Timestamp(start) + pd.to_timedelta(offsets * 86400, unit="s").round("s")
    tx = pd.DataFrame({"customer_id": cust, "ts": ts, "amount": amount})
    tx = tx.sort_values(["ts", "customer_id"], kind="stable").reset_index(drop=True)
    tx.insert(0, "transaction_id", np.arange(1, len(tx) + 1))
    tx["merchant_category"] = rng.choice(["grocery", "travel", "fuel", "online", "restaurants"], len(tx))

    # Balances: a snapshot every 1-4 days per customer, drifting with spending and salary.
    rows = []
    base_balance = income / 12 * rng.uniform(0.2, 2.5, customers)
    for i, cid in enumerate(ids):
        t = start + timedelta(hours=float(rng.integers(0, 72)))
        bal = base_balance[i]
        while t < anchor:
            bal = bal + rng.normal(income[i] / 365 * 0.9 - rate[i] * ticket[i] * 1.1, income[i] / 365)
            rows.append((cid, t, round(float(bal), 2)))
            t += timedelta(hours=float(rng.integers(24, 96)))
    balances = pd.DataFrame(rows, columns=["customer_id", "ts", "balance"])
    balances["ts"] = _utc(balances["ts"])

    # Credit applications in the last 120 days; default risk rises with low balance, high spend
    # relative to income, and inactivity. The label is drawn from that risk.
    n_apps = int(customers * 1.2)
    app_cust = rng.choice(ids, n_apps)
    app_time = anchor - timedelta(days=120) + pd.to_timedelta(rng.random(n_apps) * 118 * 86400, unit="s").round("s")
    apps = pd.DataFrame({"customer_id": app_cust, "applied_at": _utc(app_time)})
    apps["amount_requested"] = np.round(rng.lognormal(8.5, 0.7, n_apps), -1)
    last_bal = (
        pd.merge_asof(
            apps.sort_values("applied_at"),
            balances.sort_values("ts"),
            left_on="applied_at",
            right_on="ts",
            by="customer_id",
        )
        .set_index(apps.sort_values("applied_at").index)["balance"]
        .reindex(apps.index)
    )
    monthly_income = income[app_cust - 1] / 12
    spend_ratio = rate[app_cust - 1] * ticket[app_cust - 1] * 30 / monthly_income
    quiet = (quiet_from[app_cust - 1] < DAYS).astype(float)
    logit = -2.2 - 1.2 * np.tanh(last_bal.fillna(0).to_numpy() / monthly_income) + 1.5 * spend_ratio + 1.2 * quiet
    logit += 0.4 * (app_cust % 4 == 0) + rng.normal(0, 0.5, n_apps)
    apps["defaulted"] = (rng.random(n_apps) < 1 / (1 + np.exp(-logit))).astype("int64")
    apps = apps.sort_values("applied_at", kind="stable").reset_index(drop=True)
    apps.insert(0, "application_id", np.arange(1, len(apps) + 1))

    for frame in (customers_df, tx, balances, apps):
        for col in frame.columns:
            if pd.api.types.is_datetime64_any_dtype(frame[col]):
                frame[col] = _utc(frame[col])
    files = {"customers": customers_df, "transactions": tx, "balances": balances, "applications": apps}
    for name, frame in files.items():
        frame.to_parquet(out / f"{name}.parquet", index=False)
    return {name: len(frame) for name, frame in files.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "data" / "raw")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--customers", type=int, default=2000)
    parser.add_argument("--anchor", type=datetime.fromisoformat, help="End of the data (default: today 00:00 UTC)")
    args = parser.parse_args()
    counts = generate(args.out, seed=args.seed, customers=args.customers, anchor=args.anchor)
    print(", ".join(f"{n:,} {k}" for k, n in counts.items()))


if __name__ == "__main__":
    main()
