#!/bin/sh
# Counts the words, characters and lines of a JSON string event:
#   "the quick brown fox" -> {"words":4,"chars":19,"lines":1}
#   "two\nlines"          -> {"words":2,"chars":9,"lines":2}
#
# The line protocol (docs/functions.md): for each invocation one line arrives on stdin,
#   {"request_id":"req-…","event":<event>,"context":{"request_id":…,"function_name":…,…}}
# and exactly one line must be written to stdout:
#   {"result":<any JSON>}   or   {"error":{"type":"…","message":"…"}}
# Anything for the logs goes to stderr. No jq in a minimal image: the event is cut out of the line
# with sed (the context object, last on the line, contains no nested object).
while IFS= read -r line; do
  request=$(printf '%s\n' "$line" | sed -n 's/^{"request_id":"\([^"]*\)".*/\1/p')
  event=$(printf '%s\n' "$line" | sed -e 's/^{"request_id":"[^"]*","event"://' \
                                      -e 's/,"context":{[^{}]*}}$//')
  case $event in
    \"*\")
      # A JSON string: undo the escapes that matter for counting (\n, \t, \", \\).
      text=${event#\"}
      text=${text%\"}
      text=$(printf '%s\n' "$text" | sed -e 's/\\n/\n/g' -e 's/\\t/\t/g' -e 's/\\"/"/g' \
                                          -e 's/\\\\/\\/g')
      words=$(printf '%s' "$text" | wc -w)
      chars=$(printf '%s' "$text" | wc -m)
      lines=$(printf '%s\n' "$text" | wc -l)
      echo "counted request $request: $words words" >&2
      printf '{"result":{"words":%d,"chars":%d,"lines":%d}}\n' "$words" "$chars" "$lines"
      ;;
    *)
      echo "request $request: not a string: $event" >&2
      printf '{"error":{"type":"BadEvent","message":"send a JSON string, e.g. \\"hello world\\""}}\n'
      ;;
  esac
done
