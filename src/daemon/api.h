// The daemon's HTTP API (docs/api.md): routes each request to an engine action and turns the
// engine's answer into a status code, a JSON body and headers. No state of its own.
#pragma once

#include <string>

#include "daemon/http_server.h"
#include "daemon/metrics.h"
#include "engine/engine.h"

namespace ember::daemon {

// Events (and so results' requests) are capped like AWS Lambda's synchronous payloads; the
// server itself accepts bodies up to the bundle limit, for deploys.
inline constexpr size_t kMaxEventBytes = 6u << 20;

class Api {
 public:
  Api(engine::Engine* engine, MetricsRegistry* metrics) : engine_(engine), metrics_(metrics) {}
  void Handle(HttpRequest&& request, Responder respond);

 private:
  void Deploy(const std::string& name, HttpRequest&& request, Responder respond);
  void Invoke(const std::string& name, HttpRequest&& request, Responder respond);
  HttpResponse GetFunction(const std::string& name);
  HttpResponse ListFunctions();
  HttpResponse DeleteFunction(const std::string& name);
  HttpResponse Logs(const std::string& name, const HttpRequest& request);
  HttpResponse ListInstances();
  HttpResponse DeleteInstance(const std::string& id);
  HttpResponse Health();

  engine::Engine* engine_;
  MetricsRegistry* metrics_;
};

// The HTTP form of an invocation's answer (status, body, X-Ember-* and Server-Timing headers).
HttpResponse InvokeResponse(const engine::InvokeReply& reply);

}  // namespace ember::daemon
