//! Node samples on both stores: idempotent, per owner, the latest per node, bucketed averages,
//! old samples dropped.

#[macro_use]
mod common;

use std::collections::BTreeMap;

use atlas_spec::node_record::NodeRecord;
use atlas_store::NODE_RETENTION_SECONDS;
use common::Fixture;

on_both_stores!(node_samples_are_per_owner_idempotent_and_bucketed);

fn sample(node: &str, time: f64, cores: f64) -> NodeRecord {
    NodeRecord {
        target: "cluster".into(),
        node: node.into(),
        time,
        cores,
        capacity: Some(2.0),
        rss_bytes: Some(1000),
        processes: Some(3),
        jobs: BTreeMap::from([("7".to_string(), cores)]),
    }
}

fn node_samples_are_per_owner_idempotent_and_bucketed(f: &mut Fixture) {
    let store = &mut f.store;
    let t0 = 1.8e9; // a multiple of 15
    let batch: Vec<NodeRecord> = (0..6)
        .flat_map(|i| {
            let t = t0 + 5.0 * f64::from(i);
            [sample("n1", t, 1.0), sample("n2", t, f64::from(i))]
        })
        .collect();
    assert_eq!(
        store.ingest_node_samples("ada", None, &batch, t0).unwrap(),
        12
    );
    assert_eq!(
        store.ingest_node_samples("ada", None, &batch, t0).unwrap(),
        0
    );
    assert_eq!(
        store
            .ingest_node_samples("bob", None, &[sample("m1", t0, 2.0)], t0)
            .unwrap(),
        1
    );
    let latest = store.latest_node_samples("ada", t0).unwrap();
    let names: Vec<(&str, f64, f64)> = latest
        .iter()
        .map(|s| (s.node.as_str(), s.time, s.cores))
        .collect();
    assert_eq!(names, [("n1", t0 + 25.0, 1.0), ("n2", t0 + 25.0, 5.0)]);
    assert_eq!(latest[1].jobs.get("7"), Some(&5.0));
    assert!(store
        .latest_node_samples("ada", t0 + 26.0)
        .unwrap()
        .is_empty());
    // Buckets of 15 s: n2's 0,1,2 then 3,4,5 average to 1 and 4.
    let buckets = store.node_buckets("ada", t0, 15.0, 100).unwrap();
    let n2: Vec<(f64, f64)> = buckets
        .iter()
        .filter(|b| b.node == "n2")
        .map(|b| (b.start - t0, b.cores))
        .collect();
    assert_eq!(buckets.len(), 4, "{buckets:?}");
    assert_eq!(n2, [(0.0, 1.0), (15.0, 4.0)]);
    assert_eq!(store.node_buckets("ada", t0, 15.0, 1).unwrap().len(), 1);
    let bobs = store.latest_node_samples("bob", 0.0).unwrap();
    assert_eq!(bobs.len(), 1, "bob sees his node only");
    // A week later the old samples go when new ones come.
    let later = t0 + NODE_RETENTION_SECONDS + 100.0;
    store
        .ingest_node_samples("ada", None, &[sample("n1", later, 0.5)], later)
        .unwrap();
    assert_eq!(store.node_buckets("ada", 0.0, 15.0, 100).unwrap().len(), 1);
    assert_eq!(store.latest_node_samples("bob", 0.0).unwrap().len(), 1);
}
