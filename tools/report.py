"""The backtest report: one self-contained HTML file, charts drawn by matplotlib.

Every chart is a PNG embedded as a ``data:`` URI, and the page has no script,
font or style sheet from elsewhere: it opens in a browser with no network
(tests/integration/test_report_browser.py screenshots it with headless
Chromium). Charts: coins per day by rule; cost per rule and per MCC category
against the baseline; users at their caps per day; coins per user
(distribution); fraud holds per day. No VPA or txn id appears in the page.
"""

from __future__ import annotations

import base64
import html
import io
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display: files only

import matplotlib.pyplot as plt
import orjson
from matplotlib.figure import Figure

from rewards.backtest import SUMMARY_KEYS, Details, Run, details

#: Names for the MCCs of the feed; any other code is shown as itself.
MCC_CATEGORY = {
    "5411": "grocery",
    "5812": "restaurants",
    "5814": "fast food & cafes",
    "5541": "fuel",
    "4121": "taxis & rides",
    "4900": "utilities",
    "4814": "telecom",
    "5912": "pharmacy",
    "5732": "electronics",
    "5651": "clothing",
    "5999": "misc. retail",
    "7832": "cinema",
}


NEW_COLOR, BASE_COLOR = "tab:orange", "tab:blue"


def _png(fig: Figure) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=96, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _category_of(messages: Sequence[bytes | None]) -> dict[str, str]:
    """txn_id -> category of every merchant payment that parses (bad lines skipped)."""
    out: dict[str, str] = {}
    for raw in messages:
        if not raw:
            continue
        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError:
            continue
        if not isinstance(doc, dict) or not isinstance(doc.get("txn_id"), str):
            continue
        if doc.get("payee_kind") == "PERSON":
            out[doc["txn_id"]] = "P2P (people)"
        else:
            mcc = doc.get("mcc")
            out[doc["txn_id"]] = MCC_CATEGORY.get(mcc, f"MCC {mcc}") if mcc else "no MCC"
    return out


def _coins_per_day_by_rule(d: Details, title: str) -> str:
    days = sorted({day for day, _ in d.coins_by_day_rule})
    rules = sorted({rule for _, rule in d.coins_by_day_rule})
    fig, ax = plt.subplots(figsize=(9, 3.6))
    bottom = [0] * len(days)
    for rule in rules:
        values = [d.coins_by_day_rule.get((day, rule), 0) for day in days]
        ax.bar(days, values, bottom=bottom, label=rule)
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    ax.set_title(title)
    ax.set_ylabel("coins granted")
    if rules:
        ax.legend(fontsize=8)
    ax.tick_params(axis="x", labelrotation=45, labelsize=8)
    return _png(fig)


def _against(
    new: Counter[str] | dict[str, int], base: Counter[str] | dict[str, int] | None, title: str
) -> str:
    keys = sorted(set(new) | set(base or {}), key=lambda k: -new.get(k, 0))
    fig, ax = plt.subplots(figsize=(9, 0.4 * max(len(keys), 3) + 1))
    y = list(range(len(keys)))
    if base is not None:
        base_x = [base.get(k, 0) for k in keys]
        ax.barh([i + 0.2 for i in y], base_x, 0.4, label="baseline", color=BASE_COLOR)
        ax.barh(
            [i - 0.2 for i in y], [new.get(k, 0) for k in keys], 0.4, label="new", color=NEW_COLOR
        )
        ax.legend(fontsize=8)
    else:
        ax.barh(y, [new.get(k, 0) for k in keys], 0.6, label="new", color=NEW_COLOR)
    ax.set_yticks(y, keys, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("coins granted")
    ax.set_title(title)
    return _png(fig)


def _per_day(new: dict[str, int], base: dict[str, int] | None, title: str, unit: str) -> str:
    days = sorted(set(new) | set(base or {}))
    fig, ax = plt.subplots(figsize=(9, 3.2))
    ax.plot(days, [new.get(d, 0) for d in days], marker="o", label="new", color=NEW_COLOR)
    if base is not None:
        base_y = [base.get(d, 0) for d in days]
        ax.plot(days, base_y, marker="s", label="baseline", color=BASE_COLOR)
        ax.legend(fontsize=8)
    ax.set_title(title)
    ax.set_ylabel(unit)
    ax.tick_params(axis="x", labelrotation=45, labelsize=8)
    return _png(fig)


def _distribution(new: Details, base: Details | None) -> str:
    fig, ax = plt.subplots(figsize=(9, 3.2))
    series = [("new", NEW_COLOR, [c for c in new.per_user.values() if c > 0])]
    if base is not None:
        series.append(("baseline", BASE_COLOR, [c for c in base.per_user.values() if c > 0]))
    top = max((max(v) for _, _, v in series if v), default=1)
    step = max(top // 30, 1)
    bins = list(range(0, top + step + 1, step))
    for label, color, values in series:
        ax.hist(values, bins=bins, alpha=0.55, label=label, color=color)
    ax.set_title("Coins per user (net of clawbacks; users with some)")
    ax.set_xlabel("coins")
    ax.set_ylabel("users")
    ax.legend(fontsize=8)
    return _png(fig)


def _summary_table(new: dict[str, Any], base: dict[str, Any] | None) -> str:
    rows = []
    for key in SUMMARY_KEYS:
        if key == "by_rule":
            continue
        cells = [html.escape(key), f"{new[key]:,}"]
        if base is not None:
            cells += [f"{base[key]:,}", f"{new[key] - base[key]:+,}"]
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    head = ["", "new"] + (["baseline", "change"] if base is not None else [])
    return (
        "<table><tr>"
        + "".join(f"<th>{html.escape(h)}</th>" for h in head)
        + "</tr>"
        + "".join(rows)
        + "</table>"
    )


def render_report(path: Path, messages: Sequence[bytes | None], new: Run, base: Run | None) -> None:
    categories = _category_of(messages)
    d_new = details(new.sim, new.rules.tz, categories)
    d_base = details(base.sim, base.rules.tz, categories) if base else None
    new_version = new.rules.at_ms(0).version
    base_version = base.rules.at_ms(0).version if base else None
    charts = [
        (
            "Coins per day by rule (new)",
            _coins_per_day_by_rule(d_new, "new: coins per day by rule"),
        ),
    ]
    if d_base is not None:
        charts.append(
            (
                "Coins per day by rule (baseline)",
                _coins_per_day_by_rule(d_base, "baseline: coins per day by rule"),
            )
        )
    charts += [
        (
            "Cost per rule",
            _against(new.summary["by_rule"], base.summary["by_rule"] if base else None, "per rule"),
        ),
        (
            "Cost per MCC category",
            _against(
                d_new.coins_by_mcc, d_base.coins_by_mcc if d_base else None, "per MCC category"
            ),
        ),
        (
            "Users at their daily cap",
            _per_day(
                {k: len(v) for k, v in d_new.capped_by_day.items()},
                {k: len(v) for k, v in d_base.capped_by_day.items()} if d_base else None,
                "users whose payments hit the daily cap, per day",
                "users",
            ),
        ),
        ("Coins per user", _distribution(d_new, d_base)),
        (
            "Fraud holds",
            _per_day(
                dict(d_new.holds_by_day),
                dict(d_base.holds_by_day) if d_base else None,
                "payments held by fraud cooldowns, per day",
                "payments",
            ),
        ),
    ]
    title = f"Backtest: {new_version}" + (f" against {base_version}" if base_version else "")
    monthly = (
        f"<p>Users at their monthly cap: {len(d_new.capped_monthly_users):,}"
        + (f" (baseline {len(d_base.capped_monthly_users):,})" if d_base else "")
        + "</p>"
    )
    body = "".join(
        f'<section><h2>{html.escape(name)}</h2><img alt="{html.escape(name)}" src="{src}">'
        "</section>"
        for name, src in charts
    )
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy"
 content="default-src 'none'; img-src data:; style-src 'unsafe-inline'">
<title>{html.escape(title)}</title>
<style>
body {{ font-family: sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; }}
td, th {{ border: 1px solid #ccc; padding: 4px 10px; text-align: right; }}
td:first-child {{ text-align: left; }}
img {{ max-width: 100%; }}
</style></head><body>
<h1>{html.escape(title)}</h1>
<p>{len(messages):,} feed messages through the pure core, offline.</p>
{_summary_table(new.summary, base.summary if base else None)}
{monthly}
{body}
</body></html>
"""
    path.write_text(page, encoding="utf-8")
