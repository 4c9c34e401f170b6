"""A greeting: {"name": "ember"} -> {"greeting": "Hello, ember!"}."""


def handle(event, context):
    name = "world"
    if isinstance(event, dict) and event.get("name") not in (None, ""):
        name = str(event["name"])
    # print() goes to the function's logs: `ember logs hello-python`.
    print(f"greeting {name} (request {getattr(context, 'request_id', '-')})")
    return {"greeting": f"Hello, {name}!"}
