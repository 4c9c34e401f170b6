#include "daemon/api.h"

#include <nlohmann/json.hpp>

#include "base/log.h"
#include "base/units.h"

namespace ember::daemon {
namespace {

using nlohmann::json;

std::string Dump(const json& value) {
  return value.dump(-1, ' ', false, json::error_handler_t::replace);
}

int StatusForError(const Error& error) {
  switch (error.code()) {
    case ErrorCode::kNotFound:
      return 404;
    case ErrorCode::kInvalidArgument:
    case ErrorCode::kCorrupt:
      return 400;
    case ErrorCode::kBusy:
    case ErrorCode::kAlreadyExists:
      return 409;
    case ErrorCode::kResourceExhausted:
      return 413;
    case ErrorCode::kUnavailable:
      return 503;
    default:
      return 500;
  }
}

json TemplateJson(const engine::TemplateView& t) {
  json value = {{"function", t.function},
                {"version", t.version},
                {"state", t.state},
                {"children", t.children},
                {"spawned", t.spawned},
                {"netns_pool",
                 {{"ready", t.netns.ready},
                  {"target", t.netns.target},
                  {"taken", t.netns.taken},
                  {"misses", t.netns.misses}}}};
  if (!t.reason.empty()) value["reason"] = t.reason;
  if (!t.id.empty()) {
    value["id"] = t.id;
    value["pid"] = t.pid;
    value["started"] = FormatRfc3339(t.started);
  }
  return value;
}

json SnapshotJson(const engine::SnapshotView& s) {
  json value = {
      {"function", s.function}, {"version", s.version}, {"state", s.state}, {"path", s.path}};
  if (!s.reason.empty()) value["reason"] = s.reason;
  if (s.state == "ready") {
    value["size_bytes"] = s.size_bytes;
    value["resident"] = s.resident;
    value["working_set_pages"] = s.working_set_pages;
    value["taken"] = FormatRfc3339(s.taken);
    value["shells"] = {
        {"ready", s.shells.ready}, {"target", s.shells.target}, {"misses", s.shells.misses}};
  }
  return value;
}

json FunctionJson(const engine::FunctionView& view) {
  json manifest = json::parse(engine::ManifestToJson(view.stored.manifest), nullptr, false);
  return {{"name", view.stored.manifest.name},
          {"version", view.stored.version},
          {"deployed", view.stored.deployed},
          {"manifest", manifest},
          {"instances",
           {{"booting", view.counts.booting},
            {"idle", view.counts.idle},
            {"busy", view.counts.busy},
            {"queued", view.counts.queued}}},
          {"template", view.fork_template ? TemplateJson(*view.fork_template) : json(nullptr)},
          {"snapshot", view.snapshot ? SnapshotJson(*view.snapshot) : json(nullptr)}};
}

// Splits "/v1/functions/x/invoke" into {"v1", "functions", "x", "invoke"}.
std::vector<std::string> Segments(const std::string& path) {
  std::vector<std::string> parts;
  size_t start = 1;
  while (start <= path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string::npos) end = path.size();
    if (end > start) parts.push_back(path.substr(start, end - start));
    start = end + 1;
  }
  return parts;
}

HttpResponse MethodNotAllowed(const HttpRequest& request, const char* allowed) {
  HttpResponse response = JsonError(
      405, "method_not_allowed",
      request.method + " is not allowed on " + request.path + " (allowed: " + allowed + ")");
  response.headers.emplace_back("Allow", allowed);
  return response;
}

}  // namespace

void Api::Handle(HttpRequest&& request, Responder respond) {
  const auto parts = Segments(request.path);
  const std::string& method = request.method;
  if (request.path == "/metrics") {
    if (method != "GET") return respond(MethodNotAllowed(request, "GET"));
    HttpResponse response;
    response.content_type = kMetricsContentType;
    response.body = metrics_->Render();
    return respond(std::move(response));
  }
  if (parts.size() < 2 || parts[0] != "v1") {
    return respond(JsonError(404, "not_found", "no such endpoint: " + request.path));
  }
  const std::string& collection = parts[1];
  if (collection == "healthz" && parts.size() == 2) {
    if (method != "GET") return respond(MethodNotAllowed(request, "GET"));
    return respond(Health());
  }
  if (collection == "functions") {
    if (parts.size() == 2) {
      if (method != "GET") return respond(MethodNotAllowed(request, "GET"));
      return respond(ListFunctions());
    }
    const std::string& name = parts[2];
    if (parts.size() == 3) {
      if (method == "PUT") return Deploy(name, std::move(request), std::move(respond));
      if (method == "GET") return respond(GetFunction(name));
      if (method == "DELETE") return respond(DeleteFunction(name));
      return respond(MethodNotAllowed(request, "GET, PUT, DELETE"));
    }
    if (parts.size() == 4 && parts[3] == "invoke") {
      if (method != "POST") return respond(MethodNotAllowed(request, "POST"));
      return Invoke(name, std::move(request), std::move(respond));
    }
    if (parts.size() == 4 && parts[3] == "snapshot") {
      if (method != "POST") return respond(MethodNotAllowed(request, "POST"));
      if (auto known = engine_->GetFunction(name); !known) {
        return respond(JsonError(404, "function_not_found", known.error().message()));
      }
      return engine_->TakeSnapshot(
          name, [respond = std::move(respond)](Result<engine::SnapshotView> taken) mutable {
            if (!taken) {
              int status = StatusForError(taken.error());
              respond(JsonError(status == 503 ? 503 : 500, "snapshot_failed",
                                taken.error().ToString()));
              return;
            }
            respond(JsonResponse(200, Dump(SnapshotJson(*taken))));
          });
    }
    if (parts.size() == 4 && parts[3] == "logs") {
      if (method != "GET") return respond(MethodNotAllowed(request, "GET"));
      return respond(Logs(name, request));
    }
  }
  if (collection == "templates" && parts.size() == 2) {
    if (method != "GET") return respond(MethodNotAllowed(request, "GET"));
    json list = json::array();
    for (const auto& t : engine_->ListTemplates()) list.push_back(TemplateJson(t));
    return respond(JsonResponse(200, Dump({{"templates", list}})));
  }
  if (collection == "instances") {
    if (parts.size() == 2) {
      if (method != "GET") return respond(MethodNotAllowed(request, "GET"));
      return respond(ListInstances());
    }
    if (parts.size() == 3) {
      if (method != "DELETE") return respond(MethodNotAllowed(request, "DELETE"));
      return respond(DeleteInstance(parts[2]));
    }
  }
  respond(JsonError(404, "not_found", "no such endpoint: " + request.path));
}

void Api::Deploy(const std::string& name, HttpRequest&& request, Responder respond) {
  if (request.body.empty()) {
    return respond(JsonError(400, "invalid_bundle",
                             "the request body must be the function bundle as a tar archive"));
  }
  engine_->Deploy(name, std::move(request.body),
                  [this, respond = std::move(respond)](engine::DeployReply reply) {
                    using engine::DeployOutcome;
                    switch (reply.outcome) {
                      case DeployOutcome::kCreated:
                      case DeployOutcome::kUpdated: {
                        auto view = engine_->GetFunction(reply.function);
                        if (!view)
                          return respond(JsonError(500, "internal", view.error().ToString()));
                        json body = FunctionJson(*view);
                        body["deploy_ms"] = static_cast<double>(reply.took.count()) / 1000.0;
                        return respond(JsonResponse(
                            reply.outcome == DeployOutcome::kCreated ? 201 : 200, Dump(body)));
                      }
                      case DeployOutcome::kInvalid:
                        return respond(JsonError(400, "invalid_manifest", reply.message));
                      case DeployOutcome::kBusy:
                        return respond(JsonError(409, "deploy_in_progress", reply.message));
                      case DeployOutcome::kInitFailed: {
                        json error = {{"code", "init_failed"},
                                      {"message", reply.message},
                                      {"type", reply.init_error.type},
                                      {"traceback", reply.init_error.traceback},
                                      {"output", reply.early_log}};
                        return respond(JsonResponse(422, Dump({{"error", error}})));
                      }
                      case DeployOutcome::kFailed:
                        return respond(JsonError(500, "deploy_failed", reply.message));
                    }
                  });
}

HttpResponse Api::GetFunction(const std::string& name) {
  auto view = engine_->GetFunction(name);
  if (!view) return JsonError(404, "function_not_found", view.error().message());
  return JsonResponse(200, Dump(FunctionJson(*view)));
}

HttpResponse Api::ListFunctions() {
  json list = json::array();
  for (const auto& view : engine_->ListFunctions()) list.push_back(FunctionJson(view));
  return JsonResponse(200, Dump({{"functions", list}}));
}

HttpResponse Api::DeleteFunction(const std::string& name) {
  auto removed = engine_->RemoveFunction(name);
  if (!removed) {
    int status = StatusForError(removed.error());
    return JsonError(status, status == 404 ? "function_not_found" : "remove_failed",
                     removed.error().ToString());
  }
  HttpResponse response;
  response.status = 204;
  response.content_type.clear();
  return response;
}

HttpResponse Api::Logs(const std::string& name, const HttpRequest& request) {
  engine::LogReadOptions options;
  if (auto it = request.query.find("offset"); it != request.query.end())
    options.cursor = it->second;
  if (auto it = request.query.find("instance"); it != request.query.end()) {
    options.instance = it->second;
  }
  auto read = engine_->ReadLogs(name, options);
  if (!read) {
    int status = StatusForError(read.error());
    return JsonError(status, status == 404 ? "not_found" : "logs_failed", read.error().ToString());
  }
  HttpResponse response;
  response.content_type = "text/plain; charset=utf-8";
  if (read->skipped) response.body += "[ember: some output was rotated away before it was read]\n";
  for (const auto& chunk : read->chunks) {
    // With several instances, each one's output is headed by its id (like tail -f on files).
    if (options.instance.empty()) response.body += "==> " + chunk.instance + " <==\n";
    response.body += chunk.text;
    if (options.instance.empty() && !chunk.text.empty() && chunk.text.back() != '\n') {
      response.body += '\n';
    }
  }
  response.headers.emplace_back("X-Ember-Log-Offset", read->cursor);
  response.headers.emplace_back("X-Ember-Log-More", read->more ? "true" : "false");
  return response;
}

HttpResponse Api::ListInstances() {
  json list = json::array();
  for (const auto& i : engine_->ListInstances()) {
    list.push_back({{"id", i.id},
                    {"function", i.function},
                    {"version", i.version},
                    {"state", i.state},
                    {"boot_mode", engine::BootModeName(i.boot_mode)},
                    {"pid", i.pid},
                    {"started", FormatRfc3339(i.started)},
                    {"last_used", FormatRfc3339(i.last_used)},
                    {"invocations", i.invocations},
                    {"in_flight", i.in_flight}});
  }
  return JsonResponse(200, Dump({{"instances", list}}));
}

HttpResponse Api::DeleteInstance(const std::string& id) {
  auto stopped = engine_->StopInstance(id);
  if (!stopped) return JsonError(404, "instance_not_found", stopped.error().message());
  HttpResponse response;
  response.status = 204;
  response.content_type.clear();
  return response;
}

HttpResponse Api::Health() {
  return JsonResponse(200, Dump({{"status", engine_->shutting_down() ? "stopping" : "ok"},
                                 {"version", EMBER_VERSION},
                                 {"functions", engine_->function_count()},
                                 {"instances", engine_->instance_count()}}));
}

}  // namespace ember::daemon
