//! What a pass of the operator reports, pure: the `StorageService` status (phase, ready chunk
//! servers, capacity, chunks under goal, each instance, conditions, the last events) from the
//! reconcile plan and what was observed, and the same as Prometheus metrics.

use std::fmt::Write;

use crate::reconcile::{Instance, Observed, Phase, Plan, Role, State};
use crate::spec::{Condition, InstanceStatus, StorageServiceStatus};

/// Events kept in the status.
pub const EVENTS_KEPT: usize = 20;

/// The status after a pass. `previous` keeps the conditions' transition times and the events
/// (the pass's actions and events are added, each with `now`); `now` is an RFC 3339 time.
pub fn status(
    plan: &Plan,
    seen: &Observed,
    previous: &StorageServiceStatus,
    generation: Option<i64>,
    now: &str,
) -> StorageServiceStatus {
    let fs = seen.fs.clone().unwrap_or_default();
    let instances: Vec<InstanceStatus> = seen
        .instances
        .iter()
        .map(|i| instance(i, plan.memory.restarts.get(&i.member.to_string())))
        .collect();
    let ready = seen
        .instances
        .iter()
        .filter(|i| i.member.role == Role::ChunkServer && i.serving && !i.marked_for_removal)
        .count() as u32;
    // What was done and what happened, each with the pass's time.
    let mut events = previous.events.clone();
    let done = plan.actions.iter().map(crate::reconcile::describe);
    events.extend(
        done.chain(plan.events.iter().cloned())
            .map(|e| format!("{now} {e}")),
    );
    let drop = events.len().saturating_sub(EVENTS_KEPT);
    events.drain(..drop);
    let available = seen.fs.is_some() && fs.missing_chunks == 0 && plan.phase != Phase::Pending;
    let conditions = vec![
        condition(previous, now, "Available", available, &plan.reason),
        condition(
            previous,
            now,
            "Progressing",
            matches!(
                plan.phase,
                Phase::Scaling | Phase::Upgrading | Phase::Pending
            ),
            &plan.reason,
        ),
        condition(
            previous,
            now,
            "Degraded",
            plan.phase == Phase::Degraded,
            &plan.reason,
        ),
    ];
    StorageServiceStatus {
        phase: Some(plan.phase.to_string()),
        ready_chunk_servers: ready,
        capacity_bytes: fs.capacity_bytes,
        used_bytes: fs.used_bytes,
        under_goal_chunks: fs.under_goal_chunks,
        observed_generation: generation,
        conditions,
        reason: Some(plan.reason.clone()),
        master_address: previous.master_address.clone(),
        instances,
        memory: plan.memory.clone(),
        events,
    }
}

fn instance(i: &Instance, restarts: Option<&u32>) -> InstanceStatus {
    InstanceStatus {
        name: i.member.to_string(),
        image: i.image.clone(),
        state: match i.state {
            State::Starting => "Starting",
            State::Running => "Running",
            State::Exited => "Exited",
        }
        .into(),
        serving: i.serving,
        restarts: restarts.copied().unwrap_or(0),
        marked_for_removal: i.marked_for_removal,
    }
}

/// A condition, its transition time kept while its status does not change.
fn condition(
    previous: &StorageServiceStatus,
    now: &str,
    kind: &str,
    true_: bool,
    reason: &str,
) -> Condition {
    let status = if true_ { "True" } else { "False" };
    let since = previous
        .conditions
        .iter()
        .find(|c| c.type_ == kind && c.status == status)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or_else(|| now.to_string());
    Condition {
        type_: kind.into(),
        status: status.into(),
        reason: kind.into(),
        message: reason.into(),
        last_transition_time: since,
    }
}

/// The services' statuses as Prometheus metrics (text format 0.0.4), each family once, each
/// sample labelled with its service's name (`name`, or `namespace/name` on Kubernetes), with
/// the actions taken for it.
pub fn metrics(services: &[(&str, &StorageServiceStatus, u64)]) -> String {
    let mut out = String::new();
    type Figure = fn(&StorageServiceStatus) -> u64;
    let gauges: [(&str, &str, Figure); 4] = [
        (
            "atlas_storage_ready_chunk_servers",
            "Chunk servers connected to the master and not marked for removal.",
            |s| s.ready_chunk_servers as u64,
        ),
        (
            "atlas_storage_capacity_bytes",
            "Total space the master reports.",
            |s| s.capacity_bytes,
        ),
        (
            "atlas_storage_used_bytes",
            "Space in use as the master reports it.",
            |s| s.used_bytes,
        ),
        (
            "atlas_storage_under_goal_chunks",
            "Chunks with fewer copies than their goal.",
            |s| s.under_goal_chunks,
        ),
    ];
    let label = |name: &str| format!("service=\"{}\"", escape(name));
    for (metric, help, figure) in gauges {
        let _ = writeln!(out, "# HELP {metric} {help}\n# TYPE {metric} gauge");
        for (name, status, _) in services {
            let _ = writeln!(out, "{metric}{{{}}} {}", label(name), figure(status));
        }
    }
    let _ = writeln!(
        out,
        "# HELP atlas_storage_reconcile_actions Actions the operator has taken since it started.\n# TYPE atlas_storage_reconcile_actions counter"
    );
    for (name, _, actions) in services {
        let _ = writeln!(
            out,
            "atlas_storage_reconcile_actions{{{}}} {actions}",
            label(name)
        );
    }
    let _ = writeln!(
        out,
        "# HELP atlas_storage_phase The service's phase (1 for the present one).\n# TYPE atlas_storage_phase gauge"
    );
    for (name, status, _) in services {
        let phase = status.phase.as_deref().unwrap_or("Pending");
        for p in [
            "Pending",
            "Healthy",
            "Degraded",
            "Scaling",
            "Upgrading",
            "Failed",
        ] {
            let _ = writeln!(
                out,
                "atlas_storage_phase{{{},phase=\"{p}\"}} {}",
                label(name),
                u8::from(p == phase)
            );
        }
    }
    let _ = writeln!(
        out,
        "# HELP atlas_storage_instance_restarts Restarts of each instance by the operator.\n# TYPE atlas_storage_instance_restarts gauge"
    );
    for (name, status, _) in services {
        for i in &status.instances {
            let _ = writeln!(
                out,
                "atlas_storage_instance_restarts{{{},instance=\"{}\",state=\"{}\"}} {}",
                label(name),
                escape(&i.name),
                escape(&i.state),
                i.restarts
            );
        }
    }
    out
}

/// A label value escaped as the text format asks.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reconcile::{FsHealth, Member, Memory};

    fn plan(phase: Phase, events: &[&str]) -> Plan {
        Plan {
            actions: vec![],
            phase,
            reason: "why".into(),
            memory: Memory::default(),
            events: events.iter().map(|e| e.to_string()).collect(),
        }
    }

    fn seen() -> Observed {
        let up = |member, serving| Instance {
            member,
            image: "i".into(),
            state: State::Running,
            for_secs: 9,
            serving,
            marked_for_removal: false,
            address: None,
        };
        Observed {
            instances: vec![
                up(Member::MASTER, true),
                up(Member::chunk_server(0), true),
                up(Member::chunk_server(1), false),
            ],
            fs: Some(FsHealth {
                under_goal_chunks: 3,
                capacity_bytes: 100,
                used_bytes: 40,
                ..FsHealth::default()
            }),
        }
    }

    #[test]
    fn the_status_counts_serving_servers_and_keeps_transition_times() {
        let first = status(
            &plan(Phase::Degraded, &["a"]),
            &seen(),
            &StorageServiceStatus::default(),
            Some(3),
            "T1",
        );
        assert_eq!(first.ready_chunk_servers, 1);
        assert_eq!(first.under_goal_chunks, 3);
        assert_eq!(first.phase.as_deref(), Some("Degraded"));
        let degraded = |s: &StorageServiceStatus| {
            s.conditions
                .iter()
                .find(|c| c.type_ == "Degraded")
                .cloned()
                .unwrap()
        };
        assert_eq!(degraded(&first).status, "True");
        let second = status(
            &plan(Phase::Degraded, &["b"]),
            &seen(),
            &first,
            Some(3),
            "T2",
        );
        assert_eq!(degraded(&second).last_transition_time, "T1");
        assert_eq!(second.events, ["T1 a", "T2 b"]);
        let mut restarting = plan(Phase::Degraded, &["c"]);
        restarting.actions.push(crate::reconcile::Action::Restart {
            member: Member::chunk_server(1),
        });
        let third = status(&restarting, &seen(), &second, Some(3), "T4");
        assert_eq!(
            third.events[2..],
            ["T4 restart chunkserver-1 on its data", "T4 c"]
        );
        let healed = status(&plan(Phase::Healthy, &[]), &seen(), &second, Some(3), "T3");
        assert_eq!(
            (
                degraded(&healed).status.as_str(),
                degraded(&healed).last_transition_time.as_str()
            ),
            ("False", "T3")
        );
    }

    #[test]
    fn events_are_bounded_and_metrics_escaped() {
        let many: Vec<String> = (0..30).map(|i| i.to_string()).collect();
        let refs: Vec<&str> = many.iter().map(String::as_str).collect();
        let s = status(
            &plan(Phase::Healthy, &refs),
            &seen(),
            &StorageServiceStatus::default(),
            None,
            "T",
        );
        assert_eq!(s.events.len(), EVENTS_KEPT);
        assert_eq!(s.events.last().map(String::as_str), Some("T 29"));
        let text = metrics(&[
            ("a\"b", &s, 7),
            ("ns/other", &StorageServiceStatus::default(), 0),
        ]);
        assert_eq!(text.matches("# TYPE atlas_storage_phase gauge").count(), 1);
        assert!(text.contains("atlas_storage_phase{service=\"ns/other\",phase=\"Pending\"} 1"));
        assert!(text.contains("atlas_storage_ready_chunk_servers{service=\"a\\\"b\"} 1"));
        assert!(text.contains("atlas_storage_phase{service=\"a\\\"b\",phase=\"Healthy\"} 1"));
        assert!(text.contains("atlas_storage_reconcile_actions{service=\"a\\\"b\"} 7"));
    }
}
