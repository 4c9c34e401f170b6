"""What every tool runs: the same commands, on the same image, under the same memory limit.

Kept apart from the tools and the report because both read it: the tools need the memory
limit, the report lists the scenarios in this order.
"""

from __future__ import annotations

PYTHON_IN_IMAGE = "/usr/bin/python3.11"  # the image has python3.11 only, no python3 symlink
MEMORY_LIMIT = 128 * 1024 * 1024
MEMORY_FLAG = "128M"

# A handler the way a function platform calls one: parse the event, compute, answer in JSON.
HANDLER = (
    "def handler(event):\n"
    "    items = event['items']\n"
    "    return {'ok': True, 'count': len(items), 'total': sum(i['price'] * i['qty'] for i in items)}\n"
)
EVENT = '{"items": [{"price": 3, "qty": 2}, {"price": 5, "qty": 1}]}'
EXPECTED_ANSWER = '{"ok": true, "count": 2, "total": 11}'
LIGHT_CODE = f"import json\n{HANDLER}print(json.dumps(handler(json.loads({EVENT!r}))))\n"
# Stdlib imports a real handler pulls in; ≈50 ms of imports for python3.11 on an idle machine
# of this kind. All of them are in Debian's minbase + python3.11 (libpython3.11-stdlib).
HEAVY_IMPORTS = (
    "json, decimal, email.parser, http.client, xml.etree.ElementTree, asyncio, argparse, "
    "logging, urllib.request, sqlite3"
)
HEAVY_CODE = f"import {HEAVY_IMPORTS}\n{HANDLER}print(json.dumps(handler(json.loads({EVENT!r}))))\n"

SCENARIOS = [
    {"name": "true", "title": "/bin/true", "argv": ["/bin/true"], "expect": None, "python": False},
    {"name": "python-light", "title": "light Python handler",
     "argv": [PYTHON_IN_IMAGE, "-c", LIGHT_CODE], "expect": EXPECTED_ANSWER, "python": True},
    {"name": "python-heavy", "title": "heavy Python handler (stdlib imports)",
     "argv": [PYTHON_IN_IMAGE, "-c", HEAVY_CODE], "expect": EXPECTED_ANSWER, "python": True},
]

# The light and heavy scenarios as ember functions (docs/functions.md), for
# bench/invoke_latency.py: the module imports what the scenario imports and holds HANDLER
# unchanged; ember calls handle(event, context), a one-line adapter. The peers run the scenario
# of the same kind (`peer_scenario`), so the ratios compare the same work.
FUNCTION_HANDLER = "main.handle"


def function_module(imports: str) -> str:
    return f"import {imports}\n\n{HANDLER}\n\ndef handle(event, context):\n    return handler(event)\n"


FUNCTIONS = [
    {"name": "bench-light", "kind": "light", "title": "light Python handler",
     "module": function_module("json"), "peer_scenario": "python-light"},
    {"name": "bench-heavy", "kind": "heavy", "title": "heavy Python handler (stdlib imports)",
     "module": function_module(HEAVY_IMPORTS), "peer_scenario": "python-heavy"},
]
