"""Summarizes records: count, totals and statistics per group, and the time span covered.

Event:  {"records": [{"group": "eu", "value": 12.5, "at": "2024-05-01T10:00:00Z"}, ...],
         "group_by": "group"}          # optional, default "group"
Result: {"count": 3, "groups": {"eu": {"count": 2, "sum": 20.0, "mean": 10.0, "median": 10.0,
         "stdev": 3.54}, ...}, "top_group": "eu", "first": "...", "last": "...", "span_hours": 2.0}
"""
import collections
import datetime
import statistics


class BadEvent(Exception):
    """Raised for an event this function cannot use; ember reports it as the error type."""


def _timestamp(text):
    try:
        return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except (AttributeError, ValueError):
        raise BadEvent(f"'at' must be an ISO 8601 time such as 2024-05-01T10:00:00Z, not {text!r}")


def _summary(values):
    summary = {"count": len(values), "sum": round(sum(values), 6)}
    summary["mean"] = round(statistics.fmean(values), 6)
    summary["median"] = statistics.median(values)
    summary["stdev"] = round(statistics.stdev(values), 6) if len(values) > 1 else 0.0
    return summary


def handle(event, context):
    if not isinstance(event, dict) or not isinstance(event.get("records"), list):
        raise BadEvent('send {"records": [{"group": ..., "value": ..., "at": ...}, ...]}')
    key = event.get("group_by", "group")
    values = collections.defaultdict(list)
    times = []
    for index, record in enumerate(event["records"]):
        if not isinstance(record, dict) or not isinstance(record.get("value"), (int, float)):
            raise BadEvent(f"record {index} needs a numeric 'value'")
        values[str(record.get(key, "none"))].append(float(record["value"]))
        if "at" in record:
            times.append(_timestamp(record["at"]))

    groups = {name: _summary(vals) for name, vals in sorted(values.items())}
    result = {"count": len(event["records"]), "groups": groups}
    if groups:
        result["top_group"] = max(groups, key=lambda name: groups[name]["sum"])
    if times:
        first, last = min(times), max(times)
        result["first"] = first.isoformat()
        result["last"] = last.isoformat()
        result["span_hours"] = round((last - first).total_seconds() / 3600, 3)
    return result
