//! `GET /api/v1/openapi.json`: the API described as OpenAPI 3.1, written out here next to the
//! routes it describes (the server's tests call every documented path, so the two cannot drift
//! apart unseen).

use axum::Json;
use serde_json::{json, Value};

fn op(summary: &str, params: &[(&str, &str, &str)], response: &str) -> Value {
    let parameters: Vec<Value> = params
        .iter()
        .map(|(name, place, description)| {
            json!({"name": name, "in": place, "required": *place == "path",
                   "description": description, "schema": {"type": "string"}})
        })
        .collect();
    json!({"summary": summary, "parameters": parameters,
           "responses": {"200": {"description": response},
                         "401": {"description": "no valid token"},
                         "404": {"description": "no such run or experiment, or one the caller cannot see"}}})
}

const ID: (&str, &str, &str) = (
    "id",
    "path",
    "a run id (`r-…`; a prefix unique among the user's own runs works)",
);
const EXPERIMENT: (&str, &str, &str) = (
    "id",
    "path",
    "an experiment id (`e-…`; a prefix unique among the user's own works)",
);

/// The document.
pub fn spec() -> Value {
    json!({
        "openapi": "3.1.0",
        "info": {"title": "Atlas API", "version": env!("CARGO_PKG_VERSION"),
                 "description": "Runs, phases, samples and comparisons of Atlas experiments. Every path needs `Authorization: Bearer TOKEN` (`atlas user add NAME`) or the dashboard's session cookie; a user sees the runs of their tenants (teams) and their own runs of no tenant; anything else is 404, as if it did not exist."},
        "components": {"securitySchemes": {"token": {"type": "http", "scheme": "bearer"}}},
        "security": [{"token": []}],
        "paths": {
            "/api/v1/me": {"get": op("Who the caller is: their name, their tenants with their role in each, and how runs come to be theirs", &[], "{user, tenants: [{name, role}], why}")},
            "/api/v1/runs": {"get": op("The runs the user sees (their tenants' and their own), newest first", &[("status", "query", "only runs with this status"), ("label", "query", "only runs with this label, key=value"), ("from", "query", "Unix seconds: only runs submitted at or after this time"), ("to", "query", "Unix seconds: only runs submitted before this time"), ("limit", "query", "at most this many (default 200)")], "an array of runs")},
            "/api/v1/runs/{id}": {"get": op("A run with its phases and their summaries", &[ID], "the run")},
            "/api/v1/runs/{id}/samples": {"get": op("Job samples (CPU seconds, RSS, GPU %, phase), downsampled", &[ID, ("from", "query", "unix seconds"), ("to", "query", "unix seconds"), ("width", "query", "at most this many points (default 500)")], "an array of points")},
            "/api/v1/runs/{id}/metrics": {"get": op("App metric values parsed from the job's output", &[ID], "an array of {seq, time, phase, name, value}")},
            "/api/v1/runs/{id}/log": {"get": op("The end of a phase's output", &[ID, ("phase", "query", "default: the last phase that started"), ("lines", "query", "default 40")], "{phase, stdout, stderr}")},
            "/api/v1/runs/{id}/events": {"get": op("Server-sent events: run, samples, metrics, end", &[ID, ("after", "query", "the last sample seq the client has")], "text/event-stream")},
            "/api/v1/experiments": {"get": op("The user's experiments", &[], "an array of experiments")},
            "/api/v1/experiments/{id}": {"get": op("An experiment and its runs", &[EXPERIMENT], "the experiment")},
            "/api/v1/experiments/{id}/comparison": {"get": op("The comparison, as `atlas compare --format json`", &[EXPERIMENT, ("baseline", "query", "a target"), ("unit", "query", "the app metric counting work")], "the report (schemaVersion 1)")},
            "/api/v1/experiments/{id}/report": {"get": op("The comparison as HTML, as `atlas compare --format html`", &[EXPERIMENT], "text/html")},
            "/api/v1/targets": {"get": op("The targets of the directory the server runs in", &[], "an array of targets")},
            "/api/v1/records": {"post": {
                "summary": "Agent records (JSON lines, as in the spool); idempotent per (run, seq)",
                "requestBody": {"content": {"application/x-ndjson": {"schema": {"type": "string"}}}},
                "responses": {"200": {"description": "{records, inserted, duplicates}"},
                              "400": {"description": "a line that is not a record, or a field over its bound (`record`, `line`, `field`)"},
                              "401": {"description": "no valid token"},
                              "403": {"description": "a run of the caller's tenant that another member owns (its owner's agent pushes it)"},
                              "404": {"description": "no such run, or one the caller cannot see"},
                              "413": {"description": "more than 4 MiB"}}}},
            "/api/v1/nodes/samples": {"post": {
                "summary": "Node samples from node agents (JSON lines: target, node, time, cores, capacity, rssBytes, processes, jobs); idempotent per (target, node, time); the pushing user's",
                "requestBody": {"content": {"application/x-ndjson": {"schema": {"type": "string"}}}},
                "responses": {"200": {"description": "{samples, inserted}"},
                              "400": {"description": "a line that is not a node sample, or a field over its bound (`line`, `field`)"},
                              "401": {"description": "no valid token"},
                              "413": {"description": "more than 4 MiB"}}}},
            "/api/v1/nodes": {"get": op("The user's nodes: each node's latest sample and its use averaged over time buckets (the nodes page)", &[("minutes", "query", "the last N minutes (default 60, at most a week)")], "{now, since, bucketSeconds, nodes, buckets}")},
            "/api/v1/services/status": {"post": {
                "summary": "Storage services' status from their operator (`atlas operator --server`; JSON lines: place, name, time, spec, status); the latest of each service is kept; the pushing user's, or their tenant's with a scoped token",
                "requestBody": {"content": {"application/x-ndjson": {"schema": {"type": "string"}}}},
                "responses": {"200": {"description": "{services, kept}"},
                              "400": {"description": "a line that is not a service's status, or a field over its bound (`line`, `field`)"},
                              "401": {"description": "no valid token"},
                              "403": {"description": "a token scoped to a tenant where its user may not run"},
                              "413": {"description": "more than 4 MiB"}}}},
            "/api/v1/services": {"get": op("The storage services the user sees: each one's latest status as its operator pushed it (the services page)", &[], "{now, services: [{place, name, time, spec, status}]}")},
            "/api/v1/tenants": {"get": op("The caller's tenants with their role; for those they administer, also the members, quotas and usage", &[], "an array of tenants")},
            "/api/v1/tenants/{tenant}/members/{user}": {
                "put": {"summary": "Make USER a member of TENANT with a role (its admins only)",
                        "parameters": [{"name": "tenant", "in": "path", "required": true, "description": "a tenant the caller administers", "schema": {"type": "string"}}, {"name": "user", "in": "path", "required": true, "description": "a user name", "schema": {"type": "string"}}],
                        "requestBody": {"content": {"application/json": {"schema": {"type": "object", "properties": {"role": {"enum": ["admin", "member", "viewer"]}}}}}},
                        "responses": {"200": {"description": "{tenant, user, role}"}, "400": {"description": "not a user name or a role"}, "401": {"description": "no valid token"}, "403": {"description": "the caller is in the tenant but not its admin"}, "404": {"description": "a tenant the caller is not in, or a user with no account"}, "409": {"description": "it would leave the tenant without an admin"}}},
                "delete": {"summary": "Take USER out of TENANT (its admins only)",
                        "parameters": [{"name": "tenant", "in": "path", "required": true, "description": "a tenant the caller administers", "schema": {"type": "string"}}, {"name": "user", "in": "path", "required": true, "description": "a user name", "schema": {"type": "string"}}],
                        "responses": {"200": {"description": "{tenant, user, removed}"}, "401": {"description": "no valid token"}, "403": {"description": "the caller is in the tenant but not its admin"}, "404": {"description": "a tenant the caller is not in"}, "409": {"description": "it would leave the tenant without an admin"}}}},
            "/metrics": {"get": op("Prometheus exposition of the user's running jobs", &[], "text/plain; version=0.0.4")},
        }
    })
}

/// `GET /api/v1/openapi.json`.
pub async fn document() -> Json<Value> {
    Json(spec())
}
