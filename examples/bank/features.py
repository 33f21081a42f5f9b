"""The retail bank's features: card spending, balances and customer profiles.

Raw data comes from ``generate_data.py`` (customers, card transactions, balance snapshots and
credit applications). The feature service ``credit_default`` is what the default-risk model
consumes, for training (point in time, at each application) and for scoring (online).
Every view declares the expectations its rows must meet: a run checks them before publishing
(``block``: the run fails and publishes nothing; ``warn``: it publishes and records the failure).
"""

from datetime import timedelta

from featurestore import (
    Bool,
    Entity,
    Feature,
    FeatureService,
    FeatureView,
    FileSource,
    Float64,
    Fresh,
    GxExpectation,
    InRange,
    InSet,
    Int64,
    NotNull,
    RowCount,
    String,
    UniqueKeys,
)

customer = Entity(
    name="customer",
    join_keys=("customer_id",),
    key_types=(Int64,),
    description="A retail bank customer",
    owner="risk-data@bank.example",
)

transactions = FileSource(
    name="card_transactions",
    path="data/raw/transactions.parquet",
    timestamp_field="ts",
    description="Card transactions as booked, one row per transaction",
    owner="payments@bank.example",
    tags=("pii:none", "domain:cards"),
)
balances = FileSource(
    name="balance_snapshots",
    path="data/raw/balances.parquet",
    timestamp_field="ts",
    description="Current account balance snapshots, taken every one to four days",
    owner="core-banking@bank.example",
    tags=("domain:accounts",),
)
customers = FileSource(
    name="customers",
    path="data/raw/customers.parquet",
    timestamp_field="signed_up_at",
    description="Customer master data at sign-up",
    owner="crm@bank.example",
    tags=("domain:crm",),
)

# One row per customer and day: what was known at midnight UTC after that day's transactions.
customer_spend = FeatureView(
    name="customer_spend",
    entities=(customer,),
    source=transactions,
    timestamp_field="as_of",
    ttl=timedelta(days=2),
    source_lookback=timedelta(days=90),
    transformation="""
        WITH daily AS (
            SELECT customer_id, CAST(ts AS DATE) AS day, sum(amount) AS spend, count(*) AS n
            FROM card_transactions GROUP BY ALL
        ),
        grid AS (
            SELECT customer_id,
                   CAST(unnest(generate_series(CAST(min(day) AS TIMESTAMP),
                                               CAST((SELECT max(day) FROM daily) AS TIMESTAMP),
                                               INTERVAL 1 DAY)) AS DATE) AS day
            FROM daily GROUP BY customer_id
        ),
        dense AS (
            SELECT g.customer_id, g.day, coalesce(d.spend, 0) AS spend, coalesce(d.n, 0) AS n,
                   CASE WHEN d.n > 0 THEN g.day END AS active_day
            FROM grid g LEFT JOIN daily d USING (customer_id, day)
        )
        SELECT
            customer_id,
            CAST(day + INTERVAL 1 DAY AS TIMESTAMP) AS as_of,
            round(sum(spend) OVER w7, 2) AS spend_7d,
            round(sum(spend) OVER w30, 2) AS spend_30d,
            round(sum(spend) OVER w90, 2) AS spend_90d,
            CAST(sum(n) OVER w7 AS BIGINT) AS txn_count_7d,
            CAST(sum(n) OVER w30 AS BIGINT) AS txn_count_30d,
            CAST(sum(n) OVER w90 AS BIGINT) AS txn_count_90d,
            CAST(day + 1 - last_value(active_day IGNORE NULLS) OVER w_all AS BIGINT) AS days_since_last_txn
        FROM dense
        WINDOW w7 AS (PARTITION BY customer_id ORDER BY day ROWS 6 PRECEDING),
               w30 AS (PARTITION BY customer_id ORDER BY day ROWS 29 PRECEDING),
               w90 AS (PARTITION BY customer_id ORDER BY day ROWS 89 PRECEDING),
               w_all AS (PARTITION BY customer_id ORDER BY day ROWS UNBOUNDED PRECEDING)
    """,
    features=(
        Feature("spend_7d", Float64, description="Card spend over the last 7 days", tags=("spend",)),
        Feature("spend_30d", Float64, description="Card spend over the last 30 days", tags=("spend",)),
        Feature("spend_90d", Float64, description="Card spend over the last 90 days", tags=("spend",)),
        Feature("txn_count_7d", Int64, description="Number of card transactions over the last 7 days"),
        Feature("txn_count_30d", Int64, description="Number of card transactions over the last 30 days"),
        Feature("txn_count_90d", Int64, description="Number of card transactions over the last 90 days"),
        Feature("days_since_last_txn", Int64, description="Days since the customer's last card transaction (recency)"),
    ),
    expectations=(
        InRange("spend_7d", min=0),
        InRange("spend_30d", min=0),
        InRange("spend_90d", min=0),
        InRange("txn_count_90d", min=0),
        NotNull("days_since_last_txn", severity="warn"),
        UniqueKeys(),
        RowCount(min=1),
        Fresh(timedelta(days=2)),
    ),
    description="Daily card spending aggregates per customer, as known at midnight UTC",
    owner="risk-data@bank.example",
    tags=("domain:cards", "daily"),
    # `featurestore scheduler` runs it every day at 01:00 UTC, from its watermark; stale (and
    # alerted, where alerts are configured) when its newest data is over two days old.
    schedule="0 1 * * *",
    freshness=timedelta(days=2),
)

# One row per card payment: the payments service also pushes each payment as it happens
# (POST /v1/push/last_card_payment), so lookups see it at once; the hourly run recomputes the
# booked ones and keeps the pushed rows the source does not have yet.
last_card_payment = FeatureView(
    name="last_card_payment",
    entities=(customer,),
    source=transactions,
    timestamp_field="ts",
    ttl=timedelta(days=30),
    transformation="""
        SELECT customer_id, ts, max(amount) AS amount, max(merchant_category) AS merchant_category
        FROM card_transactions GROUP BY customer_id, ts
    """,
    features=(
        Feature("amount", Float64, description="Amount of the customer's latest card payment", tags=("payments",)),
        Feature("merchant_category", String, description="Merchant category of the latest card payment"),
    ),
    expectations=(InRange("amount", min=0), NotNull("merchant_category")),
    description="The customer's latest card payment, pushed as it happens and recomputed from bookings",
    owner="payments@bank.example",
    tags=("domain:cards", "push"),
    schedule="5 * * * *",
    freshness=timedelta(hours=2),
)

customer_balance = FeatureView(
    name="customer_balance",
    entities=(customer,),
    source=balances,
    timestamp_field="ts",
    ttl=timedelta(days=14),
    transformation="SELECT customer_id, ts, balance, balance < 0 AS overdrawn FROM balance_snapshots",
    features=(
        Feature("balance", Float64, description="Current account balance at the last snapshot"),
        Feature("overdrawn", Bool, description="Whether the balance was negative at the last snapshot"),
    ),
    expectations=(
        NotNull("balance"),
        UniqueKeys(),
        Fresh(timedelta(days=7)),
        # Any Great Expectations expectation, by name: a warning if the average balance moves far.
        GxExpectation(
            "expect_column_mean_to_be_between",
            {"column": "balance", "min_value": 0, "max_value": 20000},
            severity="warn",
        ),
    ),
    description="Latest current account balance per customer",
    owner="risk-data@bank.example",
    tags=("domain:accounts",),
)

customer_profile = FeatureView(
    name="customer_profile",
    entities=(customer,),
    source=customers,
    timestamp_field="signed_up_at",
    ttl=timedelta(days=3650),
    features=(
        Feature("age", Int64, description="Age in years at sign-up"),
        Feature("income", Float64, description="Declared yearly income"),
        Feature("segment", String, description="Marketing segment: mass, affluent, student or small_business"),
    ),
    expectations=(
        InRange("age", min=18, max=120),
        InRange("income", min=0),
        InSet("segment", ("mass", "affluent", "student", "small_business")),
        UniqueKeys(),
    ),
    description="Customer profile from the CRM",
    owner="crm@bank.example",
    tags=("domain:crm",),
)

credit_default = FeatureService(
    name="credit_default",
    features=(
        customer_spend.select("spend_30d", "spend_90d", "txn_count_30d", "days_since_last_txn"),
        customer_balance.select("balance", "overdrawn"),
        customer_profile.select("age", "income"),
    ),
    description="Features of the credit default risk model",
    owner="credit-risk-ds@bank.example",
)

card_activity = FeatureService(
    name="card_activity",
    features=(last_card_payment.select("amount", "merchant_category"), customer_spend.select("spend_7d")),
    description="What the card fraud rules read at each payment",
    owner="fraud@bank.example",
)
