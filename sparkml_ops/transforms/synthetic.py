"""Synthetic card transactions and customers, computed row by row from hashes of (seed, row id).

Every random draw is ``xxhash64(seed, id, salt)`` mapped to [0, 1), so a row's content depends
only on the seed and its id: output is identical whatever the partitioning, and nothing is
generated on the driver.

Fraud model (what a model can learn): customers are split into ``FRAUD_GROUPS`` groups; in each
``BLOCK_DAYS``-day block one group is exposed and each exposed customer is compromised for
``EPISODE_DAYS`` consecutive days at a random offset. A compromised customer sees bursts of
fraudulent transactions within half an hour, mostly card-not-present, abroad (often in
countries the customer never visits), at risky merchants, with amounts ~5x their usual.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

FRAUD_GROUPS = 53
BLOCK_DAYS = 8
EPISODE_DAYS = 3
FRAUD_TX_PER_DAY = 3.0  # mean fraudulent transactions per compromised customer-day
LEGIT_MERCHANTS = 20_000
RISKY_MERCHANTS = 300
HOME_COUNTRIES = (("NL", 85), ("BE", 8), ("DE", 7))
TRAVEL_COUNTRIES = ("FR", "ES", "IT", "GB", "US", "DE", "BE", "AT", "PT", "GR")
RISKY_COUNTRIES = ("US", "GB", "BR", "NG", "RO", "CN", "TR", "RU", "IN", "MX")
CURRENCY = {"NL": "EUR", "BE": "EUR", "DE": "EUR", "FR": "EUR", "ES": "EUR", "IT": "EUR", "AT": "EUR",
            "PT": "EUR", "GR": "EUR", "GB": "GBP", "US": "USD", "BR": "BRL", "NG": "NGN", "RO": "RON",
            "CN": "CNY", "TR": "TRY", "RU": "RUB", "IN": "INR", "MX": "MXN"}
LEGIT_MCC = ("5411", "5812", "5541", "5311", "5999", "4111", "5912", "5732", "7011", "4511", "5815", "5814")
RISKY_MCC = ("5732", "5816", "5967", "4829", "6051")
SEGMENTS = (("mass", 70), ("affluent", 22), ("private", 8))


@dataclass(frozen=True)
class DemoParams:
    """Size and seed of a synthetic data set."""

    start: date
    days: int
    customers: int
    tx_per_day: int
    seed: int

    def __post_init__(self) -> None:
        for name in ("days", "customers", "tx_per_day"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")

    @property
    def transactions(self) -> int:
        """How many transactions: ``days * tx_per_day``."""
        return self.days * self.tx_per_day

    @property
    def fraud_slot_share(self) -> float:
        """Share of rows drawn for the exposed group, so each compromised customer-day gets ~3 frauds."""
        return min(0.5, FRAUD_TX_PER_DAY * self.customers / (FRAUD_GROUPS * self.tx_per_day))


def uniform(seed: int, row: Column, salt: str) -> Column:
    """A deterministic uniform draw in [0, 1) from (seed, row, salt)."""
    bits = F.xxhash64(F.lit(seed), row, F.lit(salt)).bitwiseAND(F.lit((1 << 53) - 1))
    return bits.cast("double") / F.lit(float(1 << 53))


def _normal(seed: int, row: Column, salt: str) -> Column:
    # Box-Muller on two draws; 1 - u keeps the log argument in (0, 1].
    u1, u2 = uniform(seed, row, salt + "1"), uniform(seed, row, salt + "2")
    return F.sqrt(-2.0 * F.log(1.0 - u1)) * F.cos(2.0 * math.pi * u2)


def _pick(u: Column, values: tuple[str, ...]) -> Column:
    return F.element_at(F.array(*[F.lit(v) for v in values]), (u * len(values)).cast("int") + 1)


def _weighted(u: Column, options: tuple[tuple[str, int], ...]) -> Column:
    total = sum(w for _, w in options)
    expr, acc = None, 0
    for value, weight in options:
        acc += weight
        cond = u < acc / total
        expr = F.when(cond, value) if expr is None else expr.when(cond, value)
    return expr.otherwise(options[-1][0])


def home_country(seed: int, customer: Column) -> Column:
    """A customer's home country (the same draw for the customer table and the transactions)."""
    return _weighted(uniform(seed, customer, "home"), HOME_COUNTRIES)


def customer_id(customer: Column) -> Column:
    """``C00000042`` from the customer number."""
    return F.concat(F.lit("C"), F.lpad(customer.cast("string"), 8, "0"))


def synthetic_customers(params: DemoParams) -> Callable[[DataFrame], DataFrame]:
    """Rows of ``spark.range(customers)`` -> one customer attributes row each."""
    seed = params.seed

    def apply(df: DataFrame) -> DataFrame:
        c = F.col("id")
        segment = _weighted(uniform(seed, c, "seg"), SEGMENTS)
        base_limit = F.when(segment == "private", 25_000.0).when(segment == "affluent", 10_000.0).otherwise(2_500.0)
        opened = F.date_sub(F.lit(params.start), (30 + uniform(seed, c, "open") * 3600).cast("int"))
        return df.select(
            customer_id(c).alias("customer_id"),
            home_country(seed, c).alias("home_country"),
            segment.alias("segment"),
            F.round(base_limit * (0.5 + uniform(seed, c, "lim")), -2).alias("credit_limit"),
            (1945 + uniform(seed, c, "birth") * 60).cast("int").alias("birth_year"),
            opened.alias("opened_date"),
            opened.cast("timestamp").alias("valid_from"),
        )

    return apply


def synthetic_transactions(params: DemoParams) -> Callable[[DataFrame], DataFrame]:
    """Rows of ``spark.range(days * tx_per_day)`` -> card transactions with an ``is_fraud`` flag.

    Output columns: tx_id, customer_id, merchant_id, mcc, country, channel, amount, currency,
    ts, ds, is_fraud (the flag is for labels only; it is not stored with the transactions).
    """
    seed = params.seed

    def apply(df: DataFrame) -> DataFrame:
        i, cust = F.col("id"), F.col("_c")
        day = (i / params.tx_per_day).cast("long")
        fraud = _is_fraud(params, i, cust, day)
        country = _country(seed, i, fraud, home_country(seed, cust))
        channel = _channel(seed, i, fraud)
        merchant = _merchant(seed, i, fraud)
        currency = F.element_at(F.create_map(*[F.lit(x) for kv in CURRENCY.items() for x in kv]), country)
        return (
            df.withColumn("_c", _customer(params, i, day))
            .select(
                F.concat(F.lit("T"), F.lpad(i.cast("string"), 12, "0")).alias("tx_id"),
                customer_id(cust).alias("customer_id"),
                F.concat(F.lit("M"), F.lpad(merchant.cast("string"), 6, "0")).alias("merchant_id"),
                _mcc(seed, merchant, channel, fraud).alias("mcc"),
                country.alias("country"),
                channel.alias("channel"),
                _amount(seed, i, cust, fraud, channel).cast("double").alias("amount"),
                currency.alias("currency"),
                _timestamp(params, i, cust, day, fraud).alias("ts"),
                F.date_format(F.date_add(F.lit(params.start), day.cast("int")), "yyyy-MM-dd").alias("ds"),
                fraud.cast("int").alias("is_fraud"),
            )
        )

    return apply


def _exposed_group(seed: int, day: Column) -> Column:
    """The customer group exposed to fraud in the ``BLOCK_DAYS``-day block of ``day``."""
    block = (day / BLOCK_DAYS).cast("long")
    return F.pmod(F.xxhash64(F.lit(seed), block, F.lit("group")), F.lit(FRAUD_GROUPS))


def _fraud_slot(params: DemoParams, i: Column) -> Column:
    """Whether row ``i`` is drawn for the exposed group (it is fraud if that customer is compromised)."""
    return uniform(params.seed, i, "slot") < params.fraud_slot_share


def _customer(params: DemoParams, i: Column, day: Column) -> Column:
    """The customer number of row ``i``: a member of the exposed group for fraud slots, else anyone."""
    seed, n = params.seed, params.customers
    group = _exposed_group(seed, day)
    members = F.ceil((F.lit(n) - group) / F.lit(FRAUD_GROUPS))
    exposed = (uniform(seed, i, "k") * members).cast("long") * FRAUD_GROUPS + group
    heavy = uniform(seed, i, "heavy") < 0.3  # a fifth of the customers make a third of the transactions
    regular = (uniform(seed, i, "cust") * F.when(heavy, n // 5 + 1).otherwise(n)).cast("long")
    return F.when(_fraud_slot(params, i) & (exposed < n), exposed).otherwise(F.least(regular, F.lit(n - 1)))


def _is_fraud(params: DemoParams, i: Column, cust: Column, day: Column) -> Column:
    """A fraud slot whose customer is inside its ``EPISODE_DAYS``-day compromise on ``day``."""
    seed = params.seed
    block = (day / BLOCK_DAYS).cast("long")
    group = _exposed_group(seed, day)
    offset = F.pmod(F.xxhash64(F.lit(seed), cust, block, F.lit("offset")), F.lit(BLOCK_DAYS - EPISODE_DAYS + 1))
    in_episode = (F.pmod(cust, F.lit(FRAUD_GROUPS)) == group) & F.pmod(day, F.lit(BLOCK_DAYS)).between(
        offset, offset + EPISODE_DAYS - 1)
    return _fraud_slot(params, i) & in_episode


def _country(seed: int, i: Column, fraud: Column, home: Column) -> Column:
    """Legit spending stays mostly at home; fraud is mostly in risky countries."""
    abroad_u = uniform(seed, i, "abroad")
    return F.when(fraud, F.when(abroad_u < 0.25, home).otherwise(_pick(uniform(seed, i, "rc"), RISKY_COUNTRIES))) \
        .otherwise(F.when(abroad_u < 0.96, home).otherwise(_pick(uniform(seed, i, "tc"), TRAVEL_COUNTRIES)))


def _channel(seed: int, i: Column, fraud: Column) -> Column:
    """pos, ecom or atm; fraud is mostly card-not-present."""
    ch_u = uniform(seed, i, "channel")
    return F.when(fraud, F.when(ch_u < 0.7, "ecom").when(ch_u < 0.85, "atm").otherwise("pos")) \
        .otherwise(F.when(ch_u < 0.62, "pos").when(ch_u < 0.92, "ecom").otherwise("atm"))


def _merchant(seed: int, i: Column, fraud: Column) -> Column:
    """The merchant number: fraud goes to a few risky merchants numbered after the legit ones."""
    m_u = uniform(seed, i, "merchant")
    return F.when(fraud, LEGIT_MERCHANTS + (m_u * RISKY_MERCHANTS).cast("int")).otherwise((m_u * LEGIT_MERCHANTS).cast("int"))


def _mcc(seed: int, merchant: Column, channel: Column, fraud: Column) -> Column:
    """The merchant category code: a merchant always has the same one; ATMs are 6011."""
    mcc_u = uniform(seed, merchant.cast("long"), "mcc")
    return F.when(channel == "atm", "6011").when(fraud, _pick(mcc_u, RISKY_MCC)).otherwise(_pick(mcc_u, LEGIT_MCC))


def _amount(seed: int, i: Column, cust: Column, fraud: Column, channel: Column) -> Column:
    """Log-normal around the customer's typical spend, ~5x for fraud; ATM amounts are rounded to 10."""
    typical = F.log(F.lit(15.0)) + 1.2 * uniform(seed, cust, "spend")
    log_amount = F.when(fraud, typical + F.log(F.lit(5.0)) + 0.8 * _normal(seed, i, "fa")).otherwise(typical + 0.9 * _normal(seed, i, "la"))
    return F.when(channel == "atm", F.greatest(F.round(F.exp(log_amount) / 10) * 10, F.lit(10.0))) \
        .otherwise(F.round(F.exp(log_amount), 2))


def _timestamp(params: DemoParams, i: Column, cust: Column, day: Column, fraud: Column) -> Column:
    """Legit spend clusters around the afternoon; a fraud burst starts at any hour and lasts <30 minutes."""
    seed = params.seed
    day_hours = 6 + 17 * (uniform(seed, i, "h1") + uniform(seed, i, "h2") + uniform(seed, i, "h3")) / 3
    burst = 24 * uniform(seed, cust * 100_000 + day, "burst") + uniform(seed, i, "min") / 2
    seconds = (F.when(fraud, burst).otherwise(day_hours) * 3600).cast("long")
    day_start = F.unix_seconds(F.to_timestamp(F.lit(params.start.isoformat()))) + day * 86_400
    return F.timestamp_seconds(day_start + F.least(seconds, F.lit(86_399)))


def daily_labels() -> Callable[[DataFrame], DataFrame]:
    """Transactions with ``is_fraud`` -> one label per customer and active day.

    ``event_time`` is 00:00 UTC of the day: the moment a score of the day before is made (feature
    partition ``as_of_date`` = the day before holds the features known then), so a training row
    sees exactly what a score sees. ``label`` is 1 if any transaction that day was fraudulent.
    """

    def apply(df: DataFrame) -> DataFrame:
        return df.groupBy("customer_id", "ds").agg(F.max("is_fraud").cast("int").alias("label")).select(
            "customer_id", F.to_timestamp(F.col("ds")).alias("event_time"), "label", "ds")

    return apply
