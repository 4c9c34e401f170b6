#include "agent/python/bootstrap.h"

namespace ember::agent::python {

// Kept in Python: json, traceback and time do the work, and the error types and messages are
// the ones a Python developer expects. Everything a handler can raise is caught, including
// SystemExit and KeyboardInterrupt (BaseException): an invocation never ends the interpreter.
const char kBootstrapSource[] = R"PY(
import importlib
import json
import sys
import time
import traceback

_handler = None
# json.dumps with these arguments builds this very encoder on every call.
_encoder = json.JSONEncoder(separators=(",", ":"), allow_nan=False)


class Context:
    """What the handler gets as its second argument."""

    __slots__ = ("request_id", "function_name", "memory_limit_bytes", "timeout_ms", "_deadline")

    def __init__(self, request_id, function_name, memory_limit_bytes, timeout_ms):
        self.request_id = request_id
        self.function_name = function_name
        self.memory_limit_bytes = memory_limit_bytes
        self.timeout_ms = timeout_ms
        self._deadline = time.monotonic() + timeout_ms / 1000.0

    def remaining_time_ms(self):
        """Milliseconds left before the invocation's deadline (never negative)."""
        return max(0, int((self._deadline - time.monotonic()) * 1000))

    def __repr__(self):
        return (f"Context(request_id={self.request_id!r}, function_name={self.function_name!r}, "
                f"memory_limit_bytes={self.memory_limit_bytes}, timeout_ms={self.timeout_ms})")


def _text(value):
    try:
        return str(value)
    except BaseException:
        return f"<unprintable {type(value).__name__}>"


def _import_machinery(frame):
    return frame.filename.startswith("<frozen importlib") or frame.filename == importlib.__file__


def _describe(exc, tb, hide_import_machinery=False):
    try:
        report = traceback.TracebackException(type(exc), exc, tb)
        if hide_import_machinery:
            # What went wrong in the function's code, without importlib's own frames.
            report.stack = traceback.StackSummary.from_list(
                [f for f in report.stack if not _import_machinery(f)])
        formatted = "".join(report.format())
    except BaseException:
        formatted = ""
    return (type(exc).__name__, _text(exc), formatted)


def load(code_dir, module_name, function_name):
    global _handler
    if code_dir not in sys.path:
        sys.path.insert(0, code_dir)
    try:
        module = importlib.import_module(module_name)
    except BaseException as exc:
        # The traceback starts at the import, not at this frame.
        return _describe(exc, exc.__traceback__.tb_next, hide_import_machinery=True)
    try:
        handler = getattr(module, function_name)
    except AttributeError:
        return ("HandlerNotFound",
                f"module '{module_name}' has no function '{function_name}'", "")
    except BaseException as exc:
        return _describe(exc, exc.__traceback__)
    if not callable(handler):
        return ("HandlerNotFound",
                f"'{module_name}.{function_name}' is not callable "
                f"(it is a {type(handler).__name__})", "")
    _handler = handler
    return None


def invoke(event_bytes, request_id, function_name, memory_limit_bytes, timeout_ms,
           handler=None):
    if handler is None:
        handler = _handler
    context = Context(request_id, function_name, memory_limit_bytes, timeout_ms)
    try:
        event = json.loads(event_bytes) if event_bytes else None
    except (ValueError, RecursionError) as exc:
        return (False, "InvalidEvent", f"the event is not valid JSON: {_text(exc)}", "")
    try:
        result = handler(event, context)
    except BaseException as exc:
        # The traceback starts at the handler, not at this frame.
        tb = exc.__traceback__.tb_next if exc.__traceback__ is not None else None
        return (False,) + _describe(exc, tb)
    try:
        return (True, _encoder.encode(result))
    except (TypeError, ValueError, RecursionError) as exc:
        return (False, "ResultNotSerializable", _text(exc), "")
    except BaseException as exc:
        return (False,) + _describe(exc, exc.__traceback__)


def _echo(event, context):
    return event


def warm_up():
    """Runs the invocation path (event decoding, context, result encoding; not the function's
    handler) until CPython has specialized its bytecode. A template does this before it forks:
    CPython 3.11 quickens and specializes code in place, and a forked child doing it would write
    into, and so copy, the template's pages holding these code objects."""
    for _ in range(100):
        invoke(b'{"a": [1, 2.5, "x", true, null, {"b": {}}]}', "warm-up", "", 0, 1000, _echo)
)PY";

}  // namespace ember::agent::python
