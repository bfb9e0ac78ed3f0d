//! The store test suite: every case is written once against `dyn Store` and runs on a fresh
//! SQLite store (`sqlite::CASE`) and a fresh PostgreSQL database (`postgres::CASE`), so the two
//! implementations cannot drift apart. Ingest order (the property test that was
//! `ingest_order.rs`) and concurrent ingest are at the end; bad locations and schema versions,
//! which differ per store, are in `tests/opening.rs`.

#[macro_use]
mod common;

use atlas_spec::record::RunStatus;
use std::collections::BTreeMap;

use atlas_spec::record::{GpuSample, PhaseStatus, Record, RecordBody};
use atlas_store::{
    tenancy, IngestStats, MetricSummary, Quotas, Role, RunFilter, StoreError, TokenRow,
};
use common::{new_run, record, records, Fixture};

on_both_stores!(
    ingest_twice_adds_nothing,
    a_half_ingested_spool_completes_to_the_same_rows,
    duplicates_within_one_batch_count_once,
    gpu_figures_are_summarised_per_phase,
    an_unknown_run_is_named,
    launch_figures_merge_and_differences_are_kept,
    the_series_is_sampled_at_evenly_spaced_points,
    live_reads_follow_the_sequence,
    finish_run_ends_the_running_phase_and_skips_the_rest,
    a_token_hash_finds_its_user_and_names_are_unique,
    a_prefix_resolves_among_the_owners_runs_and_experiments_only,
    a_session_finds_its_user_until_it_expires_or_is_deleted,
    runs_are_filtered_by_owner_status_label_time_and_limit,
    experiments_list_with_their_targets_and_owners,
    a_tenants_members_see_its_runs_and_nobody_else_does,
    tenants_keep_members_roles_and_quotas_and_count_usage,
    a_single_sign_on_identity_finds_its_user_and_never_takes_a_name,
    a_scoped_token_sees_its_tenant_alone_while_its_user_is_a_member,
    node_samples_pushed_for_a_tenant_are_seen_by_its_members,
    a_phase_start_before_its_run_start_ingests,
    a_run_start_after_the_run_end_does_not_reopen_the_run,
    a_runs_workflow_and_inputs_are_kept_with_it,
    an_ambiguous_prefix_is_named_as_such,
    any_permutation_of_a_spool_ingests_to_the_same_store,
    concurrent_ingests_of_one_run_give_the_same_rows,
);

fn ingest_twice_adds_nothing(f: &mut Fixture) {
    let store = &mut f.store;
    let first = store.ingest(&records("r-1")).unwrap();
    assert_eq!(
        first,
        IngestStats {
            inserted: 8,
            duplicates: 0
        }
    );
    let again = store.ingest(&records("r-1")).unwrap();
    assert_eq!(
        again,
        IngestStats {
            inserted: 0,
            duplicates: 8
        }
    );
    let detail = store.run("r-").unwrap();
    assert_eq!(detail.run.status, "succeeded");
    assert_eq!(
        detail.run.node.as_deref(),
        Some("Test CPU, 2 CPUs, 4.0 GiB")
    );
    assert_eq!(
        (
            detail.run.storage[0].path.as_str(),
            detail.run.storage[0].filesystem.as_str()
        ),
        (".", "ext4")
    );
    let train = &detail.phases[0];
    assert_eq!(train.peak_processes, Some(1));
    assert_eq!(
        (train.samples, train.peak_job_rss_bytes, train.write_bytes),
        (2, Some(300), Some(40))
    );
    assert_eq!(
        train.metrics[0],
        MetricSummary {
            name: "loss".into(),
            count: 2,
            first: 0.9,
            last: 0.5,
            min: 0.5,
            max: 0.9,
            mean: 0.7
        }
    );
}

fn a_half_ingested_spool_completes_to_the_same_rows(f: &mut Fixture) {
    let store = &mut f.store;
    store.ingest(&records("r-whole")).unwrap();
    store.ingest(&records("r-half")[..4]).unwrap();
    store.ingest(&records("r-half")).unwrap();
    let mut half = store.run("r-half").unwrap();
    half.run.id = "r-whole".into();
    assert_eq!(half, store.run("r-whole").unwrap());
}

fn duplicates_within_one_batch_count_once(f: &mut Fixture) {
    let mut batch = records("r-1");
    batch.push(batch[2].clone());
    batch.push(batch[0].clone());
    let stats = f.store.ingest(&batch).unwrap();
    assert_eq!(
        stats,
        IngestStats {
            inserted: 8,
            duplicates: 2
        }
    );
    assert_eq!(f.store.run("r-1").unwrap().phases[0].samples, 2);
}

fn gpu_figures_are_summarised_per_phase(f: &mut Fixture) {
    let gpu = |sm, mem, job, energy| GpuSample {
        index: 0,
        sm_percent: sm,
        memory_used_bytes: mem,
        job_memory_bytes: Some(job),
        power_milliwatts: 250_000,
        energy_millijoules: Some(energy),
    };
    let sample = |seq, g| {
        record(
            "r-1",
            seq,
            RecordBody::Sample {
                phase: Some("train".into()),
                cpu_user_seconds: 1.0,
                cpu_system_seconds: 0.0,
                rss_bytes: 1,
                read_bytes: 0,
                write_bytes: 0,
                threads: 1,
                processes: 1,
                cgroup_memory_bytes: None,
                gpus: vec![g],
            },
        )
    };
    let mut rs = records("r-1");
    rs.push(sample(20, gpu(40, 1000, 600, 10_000)));
    rs.push(sample(21, gpu(90, 3000, 2000, 70_000)));
    f.store.ingest(&rs).unwrap();
    let g = f.store.run("r-1").unwrap().phases[0].gpu.unwrap();
    assert_eq!(
        (
            g.devices,
            g.peak_utilisation_percent,
            g.peak_memory_bytes,
            g.peak_job_memory_bytes
        ),
        (1, 90, 3000, 2000)
    );
    assert_eq!(
        (g.mean_utilisation_percent, g.energy_joules),
        (65.0, Some(60.0))
    );
    let series = f.store.series("r-1", 10).unwrap();
    assert_eq!(series.last().unwrap().gpu_percent, Some(90.0));
}

fn an_unknown_run_is_named(f: &mut Fixture) {
    let err = f.store.run("r-nope").unwrap_err().to_string();
    assert!(err.contains("no run `r-nope`"), "{err}");
    assert!(matches!(
        f.store.experiment("e-nope"),
        Err(StoreError::NoSuchExperiment(_))
    ));
}

fn launch_figures_merge_and_differences_are_kept(f: &mut Fixture) {
    let store = &mut f.store;
    store
        .create_experiment("e-1", "w", &serde_json::json!({}), 1.0)
        .unwrap();
    let mut run = new_run("r-1", Some("e-1"), None);
    run.target = "podman".into();
    store.create_run(&run).unwrap();
    let first = BTreeMap::from([("imageBuildSeconds".to_string(), 7.5)]);
    let second = BTreeMap::from([("stageInBytes".to_string(), 42.0)]);
    store.record_launch("r-1", None, None, &first).unwrap();
    store
        .record_launch("r-1", Some("atlas-r-1"), Some(5.0), &second)
        .unwrap();
    let run = store.run("r-1").unwrap().run;
    assert_eq!(run.scheduler_id.as_deref(), Some("atlas-r-1"));
    assert_eq!((run.figures.len(), run.submitted_at), (2, 5.0));
    assert_eq!(run.figures["imageBuildSeconds"], 7.5);
    assert!(matches!(
        store.record_launch("r-2", None, None, &first),
        Err(StoreError::NoSuchRun(_))
    ));
    store
        .set_differences("e-1", &["resources differ".to_string()])
        .unwrap();
    assert_eq!(
        store.experiment("e-1").unwrap().experiment.differences,
        ["resources differ"]
    );
    assert!(store.set_differences("e-2", &[]).is_err());
}

fn the_series_is_sampled_at_evenly_spaced_points(f: &mut Fixture) {
    let store = &mut f.store;
    store.ingest(&records("r-1")).unwrap();
    let all = store.series("r-1", 100).unwrap();
    assert_eq!(all.len(), 2, "two samples, each once");
    assert_eq!((all[1].cpu_seconds, all[1].rss_bytes), (3.1, 300));
    let one = store.series("r-1", 1).unwrap();
    assert!(one.len() <= 2, "{one:?}");
    assert_eq!(one.last().unwrap().rss_bytes, 300);
    assert!(store.series("r-none", 10).unwrap().is_empty());
    // A time range keeps the samples inside it.
    let t = all[1].time;
    let later = store.series_between("r-1", Some(t), None, 10).unwrap();
    assert_eq!(later.len(), 1);
    assert_eq!(later[0].1.rss_bytes, 300);
    let earlier = store
        .series_between("r-1", None, Some(t - 0.5), 10)
        .unwrap();
    assert_eq!(earlier.len(), 1);
    assert_eq!(earlier[0].1.time, all[0].time);
    // Many samples: evenly spaced by sequence number, first and last kept.
    let many: Vec<_> = (100..1100)
        .map(|seq| common::sample("r-2", seq, "train", seq, 0))
        .collect();
    store.ingest(&many).unwrap();
    let points = store.series_between("r-2", None, None, 11).unwrap();
    let seqs: Vec<i64> = points.iter().map(|(seq, _)| *seq).collect();
    assert_eq!(
        seqs,
        (0..=10).map(|k| 100 + 999 * k / 10).collect::<Vec<i64>>()
    );
}

fn live_reads_follow_the_sequence(f: &mut Fixture) {
    let store = &mut f.store;
    store.ingest(&records("r-1")).unwrap();
    let after: Vec<i64> = store
        .samples_after("r-1", 3, 10)
        .unwrap()
        .iter()
        .map(|p| p.0)
        .collect();
    assert_eq!(after, [6]);
    assert_eq!(
        store.samples_after("r-1", 0, 1).unwrap()[0].0,
        3,
        "at most `limit`"
    );
    let latest = store.latest_sample("r-1").unwrap().unwrap();
    assert_eq!(
        (latest.0, latest.1.rss_bytes, latest.1.phase.as_deref()),
        (6, 300, Some("train"))
    );
    assert_eq!(store.latest_sample("r-none").unwrap(), None);
    let metrics = store.metrics_after("r-1", 4, 10).unwrap();
    assert_eq!(metrics.len(), 1);
    assert_eq!(
        (metrics[0].seq, metrics[0].value, metrics[0].name.as_str()),
        (5, 0.5, "loss")
    );
}

fn finish_run_ends_the_running_phase_and_skips_the_rest(f: &mut Fixture) {
    let store = &mut f.store;
    let r = "r-1";
    store.create_run(&new_run(r, None, None)).unwrap();
    store
        .ingest(&[
            common::run_start(r, 1, &["a", "b"]),
            common::phase_start(r, 2, "a", 0),
        ])
        .unwrap();
    store
        .finish_run(r, RunStatus::Failed, "the agent's host went away", 9.0)
        .unwrap();
    let detail = store.run(r).unwrap();
    assert_eq!(
        (detail.run.status.as_str(), detail.run.cause.as_deref()),
        ("failed", Some("the agent's host went away"))
    );
    let phases: Vec<(&str, &str)> = detail
        .phases
        .iter()
        .map(|p| (p.name.as_str(), p.status.as_str()))
        .collect();
    assert_eq!(phases, [("a", "failed"), ("b", "skipped")]);
    assert!(matches!(
        store.finish_run("r-none", RunStatus::Failed, "", 1.0),
        Err(StoreError::NoSuchRun(_))
    ));
    assert_eq!(
        store.agent_process(r).unwrap(),
        None,
        "this runStart named no agent process"
    );
}

fn a_token_hash_finds_its_user_and_names_are_unique(f: &mut Fixture) {
    let store = &mut f.store;
    store.add_user("ada", "h1", 1.0).unwrap();
    store.add_user("bob", "h2", 2.0).unwrap();
    assert_eq!(store.user_for_token("h2").unwrap().as_deref(), Some("bob"));
    assert_eq!(store.user_for_token("nope").unwrap(), None);
    assert!(matches!(
        store.add_user("ada", "h3", 3.0),
        Err(StoreError::UserExists(_))
    ));
    let names: Vec<String> = store.users().unwrap().into_iter().map(|u| u.name).collect();
    assert_eq!(names, ["ada", "bob"]);
}

fn a_prefix_resolves_among_the_owners_runs_and_experiments_only(f: &mut Fixture) {
    let store = &mut f.store;
    let labels = serde_json::json!({});
    for (run, experiment, owner) in [
        ("r-fa1", "e-fa1", "ada"),
        ("r-fa2", "e-fa2", "bob"),
        ("r-fa23", "e-fa2", "bob"),
    ] {
        let _ = store.create_experiment(experiment, "w", &labels, 1.0);
        store
            .create_run(&new_run(run, Some(experiment), Some(owner)))
            .unwrap();
    }
    store.create_run(&new_run("r-fa9", None, None)).unwrap();
    let run = |owner: &str, prefix: &str| store.visible_run_id(owner, prefix).unwrap();
    assert_eq!(
        run("ada", "r-fa").as_deref(),
        Some("r-fa1"),
        "bob's are not looked at"
    );
    assert_eq!(run("bob", "r-fa"), None, "two of bob's match");
    assert_eq!(
        run("bob", "r-fa2").as_deref(),
        Some("r-fa2"),
        "an exact id wins"
    );
    assert_eq!(run("bob", "r-fa1"), None);
    assert_eq!(run("ada", ""), None);
    assert_eq!(run("ada", "r-f_1"), None, "no LIKE wildcards");
    let experiment =
        |owner: &str, prefix: &str| store.visible_experiment_id(owner, prefix).unwrap();
    assert_eq!(experiment("ada", "e-f").as_deref(), Some("e-fa1"));
    assert_eq!(experiment("bob", "e-f").as_deref(), Some("e-fa2"));
    assert_eq!(experiment("carol", "e-f"), None);
    assert_eq!(store.run_owner("r-fa9").unwrap(), Some(None));
    assert_eq!(store.run_owner("r-none").unwrap(), None);
    store.claim_run("r-fa9", "carol").unwrap();
    store.claim_run("r-fa1", "carol").unwrap();
    assert_eq!(
        store.run_owner("r-fa9").unwrap(),
        Some(Some("carol".into()))
    );
    assert_eq!(
        store.run_owner("r-fa1").unwrap(),
        Some(Some("ada".into())),
        "an owner stays"
    );
}

fn a_session_finds_its_user_until_it_expires_or_is_deleted(f: &mut Fixture) {
    let store = &mut f.store;
    store.add_user("ada", "token-hash", 0.0).unwrap();
    store.create_session("s1", "ada", 10.0, 20.0).unwrap();
    store.create_session("s2", "ada", 10.0, 20.0).unwrap();
    store
        .create_session("s-nobody", "nobody", 10.0, 20.0)
        .unwrap();
    assert_eq!(
        store.session_user("s1", 19.0).unwrap().as_deref(),
        Some("ada")
    );
    assert_eq!(store.session_user("s1", 20.0).unwrap(), None, "expired");
    assert_eq!(
        store.session_user("s-nobody", 11.0).unwrap(),
        None,
        "no such user"
    );
    assert_eq!(store.session_user("token-hash", 11.0).unwrap(), None);
    store.delete_session("s2").unwrap();
    assert_eq!(store.session_user("s2", 11.0).unwrap(), None, "logged out");
    store.delete_session("s-never").unwrap();
    // Starting s3 at 30 deletes the expired ones: s1 is gone even for a clock that went back.
    store.create_session("s3", "ada", 30.0, 40.0).unwrap();
    assert_eq!(store.session_user("s1", 11.0).unwrap(), None);
    assert_eq!(
        store.session_user("s3", 31.0).unwrap().as_deref(),
        Some("ada")
    );
}

fn runs_are_filtered_by_owner_status_label_time_and_limit(f: &mut Fixture) {
    let store = &mut f.store;
    for (i, (owner, team)) in [("ada", "x"), ("ada", "y"), ("bob", "x"), ("ada", "x")]
        .iter()
        .enumerate()
    {
        let mut run = new_run(&format!("r-{i}"), None, Some(owner));
        run.labels = serde_json::json!({ "team": team, "size": "s" });
        run.submitted_at = 100.0 + i as f64;
        store.create_run(&run).unwrap();
    }
    store.ingest(&records("r-3")).unwrap();
    let ids = |filter: RunFilter| -> Vec<String> {
        store
            .runs_filtered(&filter)
            .unwrap()
            .into_iter()
            .map(|r| r.id)
            .collect()
    };
    let ada = || RunFilter {
        visible_to: Some("ada".into()),
        ..RunFilter::default()
    };
    assert_eq!(ids(RunFilter::default()), ["r-3", "r-2", "r-1", "r-0"]);
    assert_eq!(ids(ada()), ["r-3", "r-1", "r-0"]);
    assert_eq!(
        ids(RunFilter {
            status: Some(RunStatus::Submitted),
            ..ada()
        }),
        ["r-1", "r-0"]
    );
    assert_eq!(
        ids(RunFilter {
            status: Some(RunStatus::Succeeded),
            ..ada()
        }),
        ["r-3"]
    );
    let team_x = vec![("team".to_string(), "x".to_string())];
    assert_eq!(
        ids(RunFilter {
            labels: team_x.clone(),
            ..ada()
        }),
        ["r-3", "r-0"]
    );
    let both = vec![
        ("team".to_string(), "x".to_string()),
        ("size".to_string(), "s".to_string()),
    ];
    assert_eq!(
        ids(RunFilter {
            labels: both,
            ..RunFilter::default()
        }),
        ["r-3", "r-2", "r-0"]
    );
    let odd_key = vec![("it's \"odd\"".to_string(), "x".to_string())];
    assert!(ids(RunFilter {
        labels: odd_key,
        ..RunFilter::default()
    })
    .is_empty());
    let window = RunFilter {
        submitted_from: Some(101.0),
        submitted_before: Some(103.0),
        ..RunFilter::default()
    };
    assert_eq!(ids(window), ["r-2", "r-1"]);
    assert_eq!(
        ids(RunFilter {
            limit: Some(2),
            ..RunFilter::default()
        }),
        ["r-3", "r-2"]
    );
    assert_eq!(
        ids(RunFilter {
            limit: Some(0),
            ..RunFilter::default()
        }),
        Vec::<String>::new()
    );
    assert_eq!(
        store.runs().unwrap(),
        store.runs_filtered(&RunFilter::default()).unwrap()
    );
}

fn experiments_list_with_their_targets_and_owners(f: &mut Fixture) {
    let store = &mut f.store;
    let labels = serde_json::json!({ "k": "v" });
    store.create_experiment("e-1", "w", &labels, 1.0).unwrap();
    store.create_experiment("e-2", "w", &labels, 2.0).unwrap();
    store
        .create_experiment("e-empty", "w", &labels, 3.0)
        .unwrap();
    for (i, (experiment, target, owner, at)) in [
        ("e-1", "slurm", "ada", 5.0),
        ("e-1", "local", "ada", 6.0),
        ("e-1", "slurm", "ada", 7.0),
        ("e-2", "local", "bob", 8.0),
    ]
    .iter()
    .enumerate()
    {
        let mut run = new_run(&format!("r-{i}"), Some(experiment), Some(owner));
        run.target = target.to_string();
        run.submitted_at = *at;
        store.create_run(&run).unwrap();
    }
    store.ingest(&records("r-0")).unwrap();
    let all = store.experiments().unwrap();
    let ids: Vec<&str> = all.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids, ["e-empty", "e-2", "e-1"]);
    let e1 = &all[2];
    assert_eq!(
        (e1.runs, e1.succeeded, e1.failed, e1.targets.as_str()),
        (3, 1, 0, "slurm,local")
    );
    assert_eq!(e1.labels, labels);
    let of = |owner: &str| -> Vec<String> {
        store
            .visible_experiments(owner)
            .unwrap()
            .into_iter()
            .map(|e| e.id)
            .collect()
    };
    assert_eq!(of("ada"), ["e-1"]);
    assert_eq!(of("bob"), ["e-2"]);
    assert!(of("carol").is_empty());
    let detail = store.experiment("e-1").unwrap();
    let runs: Vec<&str> = detail.run_list.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(runs, ["r-0", "r-1", "r-2"]);
    assert!(
        matches!(
            store.experiment("e-"),
            Err(StoreError::AmbiguousExperiment(_))
        ),
        "ambiguous"
    );
    assert!(
        matches!(
            store.experiment("e-nope"),
            Err(StoreError::NoSuchExperiment(_))
        ),
        "unknown"
    );
}

/// A two-phase run as an agent spools it: the first phase fails, the second is skipped.
/// A run of `tenant` (or of its owner alone) in experiment `experiment`.
fn tenant_run(
    store: &mut dyn atlas_store::Store,
    run: &str,
    experiment: &str,
    owner: &str,
    tenant: Option<&str>,
) {
    let _ = store.create_experiment(experiment, "w", &serde_json::json!({}), 1.0);
    let mut new = new_run(run, Some(experiment), Some(owner));
    new.tenant = tenant.map(String::from);
    store.create_run(&new).unwrap();
}

fn a_tenants_members_see_its_runs_and_nobody_else_does(f: &mut Fixture) {
    let store = &mut *f.store;
    for t in ["vision", "speech"] {
        store.add_tenant(t, 1.0).unwrap();
    }
    store.set_member("vision", "ada", Role::Admin).unwrap();
    store.set_member("vision", "vic", Role::Viewer).unwrap();
    store.set_member("speech", "bob", Role::Member).unwrap();
    tenant_run(store, "r-v1", "e-v1", "ada", Some("vision"));
    tenant_run(store, "r-s1", "e-s1", "bob", Some("speech"));
    // Ada's own run of no tenant: hers alone, not her team's.
    tenant_run(store, "r-a1", "e-a1", "ada", None);
    // An experiment with runs of two tenants is seen by nobody whole.
    tenant_run(store, "r-m1", "e-m1", "ada", Some("vision"));
    tenant_run(store, "r-m2", "e-m1", "bob", Some("speech"));
    let seen = |store: &dyn atlas_store::Store, user: &str| -> Vec<String> {
        let filter = RunFilter {
            visible_to: Some(user.into()),
            ..RunFilter::default()
        };
        let mut ids: Vec<String> = store
            .runs_filtered(&filter)
            .unwrap()
            .into_iter()
            .map(|r| r.id)
            .collect();
        ids.sort();
        ids
    };
    assert_eq!(seen(store, "ada"), ["r-a1", "r-m1", "r-v1"]);
    assert_eq!(
        seen(store, "vic"),
        ["r-m1", "r-v1"],
        "a viewer reads the tenant's runs"
    );
    assert_eq!(seen(store, "bob"), ["r-m2", "r-s1"]);
    assert_eq!(seen(store, "eve"), Vec::<String>::new());
    assert_eq!(
        store.visible_run_id("vic", "r-v").unwrap().as_deref(),
        Some("r-v1")
    );
    assert_eq!(store.visible_run_id("bob", "r-v1").unwrap(), None);
    assert_eq!(store.visible_run_id("vic", "r-a1").unwrap(), None);
    let experiments = |store: &dyn atlas_store::Store, user: &str| -> Vec<String> {
        let mut ids: Vec<String> = store
            .visible_experiments(user)
            .unwrap()
            .into_iter()
            .map(|e| e.id)
            .collect();
        ids.sort();
        ids
    };
    assert_eq!(experiments(store, "ada"), ["e-a1", "e-v1"]);
    assert_eq!(experiments(store, "vic"), ["e-v1"]);
    assert_eq!(experiments(store, "bob"), ["e-s1"]);
    assert_eq!(store.visible_experiment_id("bob", "e-m1").unwrap(), None);
    assert_eq!(
        store
            .visible_experiment_id("vic", "e-v")
            .unwrap()
            .as_deref(),
        Some("e-v1")
    );
    // Taken out of the tenant, Vic sees none of it at once.
    assert!(store.remove_member("vision", "vic").unwrap());
    assert!(!store.remove_member("vision", "vic").unwrap());
    assert_eq!(seen(store, "vic"), Vec::<String>::new());
    assert_eq!(store.visible_run_id("vic", "r-v1").unwrap(), None);
}

fn tenants_keep_members_roles_and_quotas_and_count_usage(f: &mut Fixture) {
    let store = &mut *f.store;
    store.add_tenant("vision", 5.0).unwrap();
    assert!(matches!(
        store.add_tenant("vision", 6.0),
        Err(StoreError::TenantExists(_))
    ));
    assert!(matches!(
        store.set_member("nope", "ada", Role::Member),
        Err(StoreError::NoSuchTenant(_))
    ));
    store.set_member("vision", "ada", Role::Member).unwrap();
    store.set_member("vision", "ada", Role::Admin).unwrap();
    let quotas = Quotas {
        runs: Some(2),
        core_hours: Some(10.0),
        gpu_hours: None,
        period_days: Some(1.0),
        storage_gib: Some(2.5),
    };
    store.set_quotas("vision", &quotas).unwrap();
    assert!(matches!(
        store.set_quotas("nope", &quotas),
        Err(StoreError::NoSuchTenant(_))
    ));
    let tenants = store.tenants().unwrap();
    assert_eq!(tenants.len(), 1);
    assert_eq!(tenants[0].name, "vision");
    assert_eq!(tenants[0].created_at, 5.0);
    assert_eq!(tenants[0].members.len(), 1);
    assert_eq!(tenants[0].members[0].role, Role::Admin);
    assert_eq!(tenants[0].quotas, quotas);
    assert_eq!(
        store.memberships("ada").unwrap(),
        [("vision".to_string(), Role::Admin)]
    );
    // Runs of 4 cores and 1 GPU: one ended, one running, one submitted before the period.
    for (run, submitted) in [("r-u1", 1000.0), ("r-u2", 5000.0), ("r-old", 10.0)] {
        let mut new = new_run(run, None, Some("ada"));
        new.tenant = Some("vision".into());
        new.submitted_at = submitted;
        (new.cores, new.gpus) = (4.0, 1.0);
        store.create_run(&new).unwrap();
    }
    // r-u1's spool whole (it ended), r-u2's up to its first metric (running); `now` is half
    // an hour after r-u2 started, as the store recorded it.
    store.ingest(&records("r-u1")).unwrap();
    store.ingest(&records("r-u2")[..4]).unwrap();
    let r1 = store.run("r-u1").unwrap().run;
    let r2 = store.run("r-u2").unwrap().run;
    assert_eq!(r2.status, RunStatus::Running, "{r2:?}");
    let now = r2.started_at.unwrap() + 1800.0;
    let usage = store.usage("vision", 500.0, now).unwrap();
    assert_eq!(usage.active_runs, 2, "r-u2 running and r-old submitted");
    let expected = 4.0 * (r1.wall_seconds.unwrap() + 1800.0) / 3600.0;
    assert!(
        (usage.core_hours - expected).abs() < 1e-9,
        "{usage:?} vs {expected}"
    );
    assert!((usage.gpu_hours - expected / 4.0).abs() < 1e-9, "{usage:?}");
    // Storage: r-u1's directory as its run end said (3 MiB), whatever the period.
    let storage = usage.storage_gib * 1024.0 * 1024.0 * 1024.0;
    assert_eq!(storage, (3u64 << 20) as f64, "{usage:?}");
    assert_eq!(store.usage("nobody", 0.0, now).unwrap(), Default::default());
}

fn a_scoped_token_sees_its_tenant_alone_while_its_user_is_a_member(f: &mut Fixture) {
    let store = &mut *f.store;
    for t in ["vision", "speech"] {
        store.add_tenant(t, 1.0).unwrap();
        store.set_member(t, "ada", Role::Member).unwrap();
    }
    store.add_user("ada", "own-token-hash", 1.0).unwrap();
    tenant_run(store, "r-v1", "e-v1", "ada", Some("vision"));
    tenant_run(store, "r-s1", "e-s1", "ada", Some("speech"));
    tenant_run(store, "r-a1", "e-a1", "ada", None);
    let token = TokenRow {
        id: "tok-1".into(),
        user: "ada".into(),
        tenant: "vision".into(),
        role: Role::Viewer,
        label: Some("reports".into()),
        created_at: 2.0,
    };
    store.add_token(&token, "scoped-hash").unwrap();
    assert_eq!(
        store.scoped_token("scoped-hash").unwrap(),
        Some(token.clone())
    );
    assert_eq!(store.scoped_token("own-token-hash").unwrap(), None);
    assert_eq!(store.user_for_token("scoped-hash").unwrap(), None);
    assert_eq!(store.tokens().unwrap(), std::slice::from_ref(&token));
    let scoped = tenancy::principal("ada", Some("vision"));
    let seen = |store: &dyn atlas_store::Store, who: &str| -> Vec<String> {
        let filter = RunFilter {
            visible_to: Some(who.into()),
            ..RunFilter::default()
        };
        let rows = store.runs_filtered(&filter).unwrap();
        let mut ids: Vec<String> = rows.into_iter().map(|r| r.id).collect();
        ids.sort();
        ids
    };
    assert_eq!(seen(store, "ada"), ["r-a1", "r-s1", "r-v1"]);
    assert_eq!(seen(store, &scoped), ["r-v1"], "the token's tenant alone");
    assert_eq!(store.visible_run_id(&scoped, "r-s1").unwrap(), None);
    assert_eq!(store.visible_run_id(&scoped, "r-a1").unwrap(), None);
    assert_eq!(
        store.visible_run_id(&scoped, "r-").unwrap().as_deref(),
        Some("r-v1")
    );
    assert_eq!(store.visible_experiment_id(&scoped, "e-s1").unwrap(), None);
    let experiments: Vec<String> = store
        .visible_experiments(&scoped)
        .unwrap()
        .into_iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(experiments, ["e-v1"]);
    // A name that only looks like a scope sees nothing.
    assert_eq!(seen(store, "ada/nope"), Vec::<String>::new());
    assert_eq!(seen(store, "/vision"), Vec::<String>::new());
    // Revoked, it is gone.
    assert!(store.revoke_token("tok-1").unwrap());
    assert!(!store.revoke_token("tok-1").unwrap());
    assert_eq!(store.scoped_token("scoped-hash").unwrap(), None);
    // Out of the tenant, the principal sees nothing, and the user's tokens there are gone
    // (rejoining does not bring them back).
    store
        .add_token(
            &TokenRow {
                id: "tok-2".into(),
                ..token
            },
            "second-hash",
        )
        .unwrap();
    store.remove_member("vision", "ada").unwrap();
    assert_eq!(seen(store, &scoped), Vec::<String>::new());
    store.set_member("vision", "ada", Role::Member).unwrap();
    assert_eq!(store.scoped_token("second-hash").unwrap(), None);
    assert_eq!(store.tokens().unwrap(), []);
}

fn node_samples_pushed_for_a_tenant_are_seen_by_its_members(f: &mut Fixture) {
    let store = &mut *f.store;
    store.add_tenant("vision", 1.0).unwrap();
    store.set_member("vision", "ada", Role::Admin).unwrap();
    store.set_member("vision", "vic", Role::Viewer).unwrap();
    let sample = |node: &str| atlas_spec::node_record::NodeRecord {
        target: "cluster".into(),
        node: node.into(),
        time: 100.0,
        cores: 0.5,
        capacity: Some(2.0),
        rss_bytes: Some(1 << 20),
        processes: Some(3),
        jobs: Default::default(),
    };
    store
        .ingest_node_samples("ada", Some("vision"), &[sample("n1")], 110.0)
        .unwrap();
    store
        .ingest_node_samples("ada", None, &[sample("n2")], 110.0)
        .unwrap();
    store
        .ingest_node_samples("bob", None, &[sample("n3")], 110.0)
        .unwrap();
    let nodes = |store: &dyn atlas_store::Store, who: &str| -> Vec<String> {
        let rows = store.latest_node_samples(who, 0.0).unwrap();
        let buckets = store.node_buckets(who, 0.0, 60.0, 100).unwrap();
        let names: Vec<String> = rows.into_iter().map(|r| r.node).collect();
        let bucketed: Vec<String> = buckets.into_iter().map(|b| b.node).collect();
        assert_eq!(names, bucketed, "{who}");
        names
    };
    assert_eq!(nodes(store, "ada"), ["n1", "n2"]);
    assert_eq!(
        nodes(store, "vic"),
        ["n1"],
        "the tenant's nodes, not Ada's own"
    );
    assert_eq!(nodes(store, "bob"), ["n3"]);
    assert_eq!(
        nodes(store, &tenancy::principal("ada", Some("vision"))),
        ["n1"]
    );
}

fn a_single_sign_on_identity_finds_its_user_and_never_takes_a_name(f: &mut Fixture) {
    let store = &mut *f.store;
    store.add_user("ada", "token-hash-1", 1.0).unwrap();
    let subject = "https://login.example.org 0f3a";
    assert_eq!(store.user_for_subject(subject).unwrap(), None);
    assert!(matches!(
        store.add_sso_user("ada", subject, "token-hash-2", 2.0),
        Err(StoreError::UserExists(_))
    ));
    store
        .add_sso_user("ada2", subject, "token-hash-3", 2.0)
        .unwrap();
    assert_eq!(
        store.user_for_subject(subject).unwrap().as_deref(),
        Some("ada2")
    );
    assert_eq!(store.user_for_subject("https://other 0f3a").unwrap(), None);
    assert!(
        store
            .add_sso_user("ada3", subject, "token-hash-4", 3.0)
            .is_err(),
        "one user per identity"
    );
}

fn spool(run: &str) -> Vec<Record> {
    vec![
        common::run_start(run, 1, &["prep", "train"]),
        common::phase_start(run, 2, "prep", 0),
        common::sample(run, 3, "prep", 100, 10),
        common::sample(run, 4, "prep", 300, 10),
        common::metric(run, 5, "prep", 0.5),
        common::phase_end(run, 6, "prep", PhaseStatus::Failed),
        common::phase_end(run, 7, "train", PhaseStatus::Skipped),
        common::run_end(run, 8, PhaseStatus::Failed),
    ]
}

/// The run and its phases as JSON, named `r` whatever its id, for comparison.
fn state(store: &dyn atlas_store::Store, run: &str) -> serde_json::Value {
    let mut value = serde_json::to_value(store.run(run).unwrap()).unwrap();
    value["id"] = "r".into();
    value
}

fn a_phase_start_before_its_run_start_ingests(f: &mut Fixture) {
    let records = spool("r-1");
    let store = &mut f.store;
    store
        .ingest(&records[1..2])
        .expect("a phaseStart before its runStart is kept");
    store.ingest(&records[5..]).unwrap();
    store.ingest(&records[..5]).unwrap();
    let run = store.run("r-1").unwrap();
    assert_eq!(run.run.status, "failed");
    assert!(
        run.phases.iter().all(|p| p.status != "running"),
        "{:?}",
        run.phases
    );
}

fn an_ambiguous_prefix_is_named_as_such(f: &mut Fixture) {
    let store = &mut f.store;
    for id in ["r-ab1", "r-ab2"] {
        store.create_run(&common::new_run(id, None, None)).unwrap();
    }
    assert!(matches!(
        store.run("r-ab"),
        Err(atlas_store::StoreError::AmbiguousRun(_))
    ));
    assert_eq!(store.run("r-ab1").unwrap().run.id, "r-ab1");
    assert!(matches!(
        store.run("r-zz"),
        Err(atlas_store::StoreError::NoSuchRun(_))
    ));
}

fn a_runs_workflow_and_inputs_are_kept_with_it(f: &mut Fixture) {
    let store = &mut f.store;
    let mut run = common::new_run("r-spec", None, Some("ada"));
    run.spec = Some("apiVersion: atlas.dev/v1alpha1\n".into());
    run.inputs = Some(serde_json::json!([{"path": "data.bin", "sha256": "ab"}]));
    store.create_run(&run).unwrap();
    let kept = store.run_spec("r-spec").unwrap();
    assert_eq!(kept.workflow, run.spec);
    assert_eq!(kept.inputs, run.inputs);
    store
        .create_run(&common::new_run("r-bare", None, None))
        .unwrap();
    assert_eq!(
        store.run_spec("r-bare").unwrap(),
        atlas_store::RunSpec::default()
    );
    assert!(matches!(
        store.run_spec("r-none"),
        Err(atlas_store::StoreError::NoSuchRun(_))
    ));
}

fn a_run_start_after_the_run_end_does_not_reopen_the_run(f: &mut Fixture) {
    let store = &mut f.store;
    store.ingest(&spool("r-reopen")).unwrap();
    let mut late = spool("r-reopen")[0].clone();
    late.seq = 50;
    store.ingest(&[late]).unwrap();
    assert_eq!(store.run("r-reopen").unwrap().run.status, "failed");
}

/// Any permutation of a run's records, in any batches, gives the same run and phase rows as
/// the spool's own order; ingesting the whole spool again changes nothing. Each case is a run
/// of its own in the one store.
fn any_permutation_of_a_spool_ingests_to_the_same_store(f: &mut Fixture) {
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRunner};
    f.store.ingest(&spool("r-in-order")).unwrap();
    let expected = state(f.store.as_ref(), "r-in-order");
    let store = std::cell::RefCell::new(&mut f.store);
    let case = std::cell::Cell::new(0);
    let mut runner = TestRunner::new(Config::with_cases(48));
    let strategy = (Just(spool("x")).prop_shuffle(), 1usize..8);
    runner
        .run(&strategy, |(order, batch)| {
            case.set(case.get() + 1);
            let run = format!("r-case-{}", case.get());
            let order: Vec<Record> = order
                .into_iter()
                .map(|r| Record {
                    run: run.clone(),
                    ..r
                })
                .collect();
            let mut store = store.borrow_mut();
            for chunk in order.chunks(batch) {
                store.ingest(chunk).unwrap();
            }
            prop_assert_eq!(&state(store.as_ref(), &run), &expected);
            store.ingest(&spool(&run)).unwrap();
            prop_assert_eq!(&state(store.as_ref(), &run), &expected);
            Ok(())
        })
        .unwrap();
}

/// Two connections ingest one run's records at once, in small interleaved batches (two
/// servers behind one database): the rows are those of one ingest in order.
fn concurrent_ingests_of_one_run_give_the_same_rows(f: &mut Fixture) {
    f.store.ingest(&spool("r-in-order")).unwrap();
    let expected = state(f.store.as_ref(), "r-in-order");
    for round in 0..5 {
        let run = format!("r-together-{round}");
        let mut records = spool(&run);
        records.extend((10..200).map(|seq| common::sample(&run, seq, "prep", seq, 10)));
        let writers: Vec<_> = (0..2)
            .map(|w| {
                let mut store = f.open_again();
                let mine: Vec<Record> = records.iter().skip(w).step_by(2).cloned().collect();
                std::thread::spawn(move || {
                    for batch in mine.chunks(3) {
                        store.ingest(batch).unwrap();
                    }
                })
            })
            .collect();
        writers.into_iter().for_each(|w| w.join().unwrap());
        let mut alone = spool("r-alone");
        alone.extend((10..200).map(|seq| common::sample("r-alone", seq, "prep", seq, 10)));
        if round == 0 {
            f.store.ingest(&alone).unwrap();
        }
        assert_eq!(
            state(f.store.as_ref(), &run),
            state(f.store.as_ref(), "r-alone"),
            "round {round}"
        );
        assert_ne!(state(f.store.as_ref(), &run), expected, "the samples count");
    }
}
