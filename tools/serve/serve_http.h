// The server's HTTP side (libmicrohttpd, a thread per connection): routes, authentication, the OpenAI-shaped
// responses and their server-sent-event streams.
#ifndef REPRISE_SERVE_HTTP_H
#define REPRISE_SERVE_HTTP_H

#include "tools/serve/serve_engine.h"
#include "tools/serve/serve_request.h"

typedef struct serve_http serve_http;

// Listens on host:port (port 0: any free port) at once; until serve_http_ready every route but /health answers
// 503 and /health says the model is loading. api_key NULL: no authentication (/health never asks for it);
// metrics_key: what /metrics asks for (NULL: nothing). access_log: a line on stderr per request.
serve_http *serve_http_start(const char *host, int port, const char *api_key, const char *metrics_key, int access_log,
                             rp_err *err);
int serve_http_port(const serve_http *h);
// The model is loaded: requests are served from now on. sc and its parts must outlive the server.
void serve_http_ready(serve_http *h, serve_engine *e, const serve_context *sc, serve_metrics *met, const char *model_dir);
// Stops admitting (/health and new generation requests answer 503) and returns once no generation request is
// left in flight.
void serve_http_drain(serve_http *h);
void serve_http_stop(serve_http *h);

#endif
