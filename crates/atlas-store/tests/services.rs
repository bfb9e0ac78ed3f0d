//! Storage services' status on both stores: the latest push of each service is kept (an older
//! one never replaces it), a tenant's services are seen by its members and nobody else, and a
//! service not heard from for a week goes.

#[macro_use]
mod common;

use atlas_spec::service_record::ServiceRecord;
use atlas_store::{tenancy, Role, SERVICE_RETENTION_SECONDS};
use common::Fixture;
use serde_json::json;

on_both_stores!(the_latest_status_of_each_service_is_kept_and_seen_by_the_runs_rule);

fn status(name: &str, time: f64, phase: &str) -> ServiceRecord {
    ServiceRecord {
        place: "local".into(),
        name: name.into(),
        time,
        spec: json!({"chunkServers": 3, "goal": 2}),
        status: json!({"phase": phase, "instances": [{"name": "chunkserver-0", "restarts": 1}]}),
    }
}

fn seen(store: &dyn atlas_store::Store, who: &str) -> Vec<(String, String)> {
    let rows = store.services(who).unwrap();
    rows.into_iter()
        .map(|r| (r.name, r.status["phase"].as_str().unwrap_or("").to_string()))
        .collect()
}

fn the_latest_status_of_each_service_is_kept_and_seen_by_the_runs_rule(f: &mut Fixture) {
    let store = &mut *f.store;
    store.add_tenant("vision", 1.0).unwrap();
    store.set_member("vision", "ada", Role::Admin).unwrap();
    store.set_member("vision", "vic", Role::Viewer).unwrap();
    let now = 2e9;
    let kept = store
        .put_services(
            "ada",
            None,
            &[status("scratch", now - 20.0, "Starting")],
            now,
        )
        .unwrap();
    assert_eq!(kept, 1);
    store
        .put_services(
            "ada",
            None,
            &[status("scratch", now - 10.0, "Healthy")],
            now,
        )
        .unwrap();
    // An older push arriving late replaces nothing.
    let kept = store
        .put_services(
            "ada",
            None,
            &[status("scratch", now - 15.0, "Degraded")],
            now,
        )
        .unwrap();
    assert_eq!(kept, 0);
    let rows = store.services("ada").unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].time, now - 10.0);
    assert_eq!(rows[0].status["instances"][0]["restarts"], 1);
    assert_eq!(rows[0].spec["goal"], 2);
    store
        .put_services(
            "ada",
            Some("vision"),
            &[status("shared", now, "Healthy")],
            now,
        )
        .unwrap();
    store
        .put_services("bob", None, &[status("bobs", now, "Healthy")], now)
        .unwrap();
    let pair = |n: &str, p: &str| (n.to_string(), p.to_string());
    assert_eq!(
        seen(store, "ada"),
        [pair("scratch", "Healthy"), pair("shared", "Healthy")]
    );
    assert_eq!(seen(store, "vic"), [pair("shared", "Healthy")]);
    assert_eq!(seen(store, "bob"), [pair("bobs", "Healthy")]);
    assert_eq!(
        seen(store, &tenancy::principal("ada", Some("vision"))),
        [pair("shared", "Healthy")]
    );
    // A week later, Ada's next push takes her silent services with it.
    let later = now + SERVICE_RETENTION_SECONDS + 1.0;
    store
        .put_services("ada", None, &[status("fresh", later, "Healthy")], later)
        .unwrap();
    assert_eq!(seen(store, "ada"), [pair("fresh", "Healthy")]);
    assert_eq!(
        seen(store, "bob"),
        [pair("bobs", "Healthy")],
        "not Ada's to drop"
    );
}
