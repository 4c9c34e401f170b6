// The HTTP messages the daemon's API exchanges, independent of the transport (Beast stays inside
// http_server.cc and http_client.cc), and the URL helpers both sides share.
//
// Every error response of the API has one JSON shape, so that a client (the CLI, curl | jq) can
// always find the cause in the same place:
//   {"error": {"code": "function_not_found", "message": "no function named hello"}}
// and, for errors raised by function code, also "type" and "traceback".
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/error.h"

namespace ember::daemon {

struct HttpRequest {
  std::string method;                          // "GET", "PUT", ... as sent
  std::string path;                            // percent-decoded, without the query
  std::map<std::string, std::string> query;    // percent-decoded ('+' is a space); last one wins
  std::map<std::string, std::string> headers;  // names lower-case; repeated headers joined by ", "
  std::string body;

  // The header's value, or "" when absent. `name` must be lower-case.
  const std::string& Header(const std::string& name) const;
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  // Extra headers (X-Ember-*, Server-Timing). In a response read by HttpClient, every header
  // the server sent, names lower-case.
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;

  // The first header of that name (case-insensitive), if any.
  std::optional<std::string> Header(std::string_view name) const;
};

// {"error": {"code": code, "message": message}} with the given status.
HttpResponse JsonError(int status, std::string code, std::string message);

// A JSON body (already serialized) with the given status.
HttpResponse JsonResponse(int status, std::string json_body);

// Decodes %XX escapes (and '+' as a space when `plus_is_space`, as in a query). Fails on a
// truncated or non-hex escape, naming the text.
Result<std::string> PercentDecode(std::string_view text, bool plus_is_space = false);

// Escapes everything but RFC 3986 unreserved characters (A-Z a-z 0-9 - . _ ~), so the result is
// one path segment or one query value whatever `text` holds ('/', '?', '#', '%', spaces, UTF-8).
std::string PercentEncode(std::string_view text);

// Splits "a=1&b=x%20y" into decoded pairs; a key without '=' maps to "".
Result<std::map<std::string, std::string>> ParseQuery(std::string_view query);

// The canonical reason phrase for a status code ("Not Found"), "" when unknown.
std::string_view StatusReason(int status);

}  // namespace ember::daemon
