//! The reconcile rules, one scenario each: a new service, a crash, scale up and down, an
//! upgrade one instance at a time, a version that does not start.

use super::*;
use crate::spec::UpdateStrategy;

const OLD: &str = "localhost/atlas-moosefs:3.0.117";
const NEW: &str = "localhost/atlas-moosefs:3.0.117-2";

fn spec(servers: u32, image: &str) -> StorageServiceSpec {
    StorageServiceSpec {
        masters: 1,
        metaloggers: 1,
        chunk_servers: servers,
        goal: 2,
        storage_per_chunk_server: "1Gi".into(),
        version: "3.0.117".into(),
        image: image.into(),
        update_strategy: UpdateStrategy::default(),
        port: None,
    }
}

fn up(member: Member, image: &str) -> Instance {
    Instance {
        member,
        image: image.into(),
        state: State::Running,
        for_secs: 600,
        serving: true,
        marked_for_removal: false,
        address: Some(format!("10.0.0.{}:9422", member.index + 10)),
    }
}

/// A healthy service of `servers` chunk servers on `image`.
fn service(servers: u32, image: &str) -> Observed {
    let mut instances = vec![up(Member::MASTER, image), up(Member::metalogger(0), image)];
    instances.extend((0..servers).map(|i| up(Member::chunk_server(i), image)));
    Observed {
        instances,
        fs: Some(healthy_fs()),
    }
}

fn healthy_fs() -> FsHealth {
    FsHealth {
        chunks: 40,
        capacity_bytes: 100 << 30,
        used_bytes: 1 << 30,
        ..FsHealth::default()
    }
}

fn remembered(image: &str) -> Memory {
    Memory {
        current_image: Some(image.into()),
        ..Memory::default()
    }
}

fn set(seen: &mut Observed, member: Member, change: impl FnOnce(&mut Instance)) {
    change(
        seen.instances
            .iter_mut()
            .find(|i| i.member == member)
            .unwrap(),
    );
}

#[test]
fn a_new_service_starts_its_master_first_then_the_rest() {
    let first = plan(
        &spec(3, OLD),
        &Memory::default(),
        &Observed::default(),
        Timing::default(),
    );
    assert_eq!(
        first.actions,
        vec![Action::Start {
            member: Member::MASTER,
            image: OLD.into()
        }]
    );
    assert_eq!(first.phase, Phase::Pending);
    let master_only = Observed {
        instances: vec![up(Member::MASTER, OLD)],
        fs: Some(FsHealth::default()),
    };
    let second = plan(
        &spec(3, OLD),
        &first.memory,
        &master_only,
        Timing::default(),
    );
    let started: Vec<String> = second
        .actions
        .iter()
        .map(|a| match a {
            Action::Start { member, .. } => member.to_string(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        started,
        [
            "metalogger-0",
            "chunkserver-0",
            "chunkserver-1",
            "chunkserver-2"
        ]
    );
    let healthy = plan(
        &spec(3, OLD),
        &second.memory,
        &service(3, OLD),
        Timing::default(),
    );
    assert_eq!((healthy.phase, healthy.actions.len()), (Phase::Healthy, 0));
    assert_eq!(healthy.memory.current_image.as_deref(), Some(OLD));
}

#[test]
fn a_crashed_chunk_server_is_recreated_and_counted() {
    let mut seen = service(3, OLD);
    set(&mut seen, Member::chunk_server(1), |i| {
        i.state = State::Exited
    });
    let step = plan(&spec(3, OLD), &remembered(OLD), &seen, Timing::default());
    assert_eq!(
        step.actions,
        vec![Action::Restart {
            member: Member::chunk_server(1)
        }]
    );
    assert_eq!(step.phase, Phase::Degraded);
    assert_eq!(step.memory.restarts["chunkserver-1"], 1);
    // Back, but its chunks not yet at their goal: degraded, nothing to do but wait.
    let mut back = service(3, OLD);
    back.fs.as_mut().unwrap().under_goal_chunks = 12;
    let wait = plan(&spec(3, OLD), &step.memory, &back, Timing::default());
    assert_eq!((wait.phase, wait.actions.len()), (Phase::Degraded, 0));
    assert!(
        wait.reason.contains("12 chunks under their goal"),
        "{}",
        wait.reason
    );
}

#[test]
fn a_dead_master_is_restarted_before_anything_else() {
    let mut seen = service(3, OLD);
    set(&mut seen, Member::MASTER, |i| i.state = State::Exited);
    set(&mut seen, Member::chunk_server(0), |i| {
        i.state = State::Exited
    });
    seen.fs = None;
    let step = plan(&spec(3, OLD), &remembered(OLD), &seen, Timing::default());
    assert_eq!(
        step.actions,
        vec![Action::Restart {
            member: Member::MASTER
        }]
    );
    assert!(step.reason.contains("master is down"));
}

#[test]
fn scaling_up_starts_the_new_servers() {
    let step = plan(
        &spec(5, OLD),
        &remembered(OLD),
        &service(3, OLD),
        Timing::default(),
    );
    assert_eq!(
        step.actions,
        vec![
            Action::Start {
                member: Member::chunk_server(3),
                image: OLD.into()
            },
            Action::Start {
                member: Member::chunk_server(4),
                image: OLD.into()
            }
        ]
    );
    assert_eq!(step.phase, Phase::Scaling);
}

#[test]
fn scaling_down_drains_before_it_removes() {
    let memory = remembered(OLD);
    let mut seen = service(5, OLD);
    let mark = plan(&spec(3, OLD), &memory, &seen, Timing::default());
    assert_eq!(
        mark.actions,
        vec![
            Action::MarkForRemoval {
                member: Member::chunk_server(3)
            },
            Action::MarkForRemoval {
                member: Member::chunk_server(4)
            }
        ]
    );
    for i in [3, 4] {
        set(&mut seen, Member::chunk_server(i), |i| {
            i.marked_for_removal = true
        });
    }
    let fs = seen.fs.as_mut().unwrap();
    fs.under_goal_without_marked = 7;
    fs.marked_used_bytes = 1 << 20;
    let draining = plan(&spec(3, OLD), &memory, &seen, Timing::default());
    assert_eq!(draining.actions, vec![]);
    assert!(
        draining.reason.contains("7 chunks still depend"),
        "{}",
        draining.reason
    );
    seen.fs.as_mut().unwrap().under_goal_without_marked = 0;
    let remove = plan(&spec(3, OLD), &memory, &seen, Timing::default());
    assert_eq!(
        remove.actions,
        vec![
            Action::Remove {
                member: Member::chunk_server(3)
            },
            Action::Remove {
                member: Member::chunk_server(4)
            }
        ]
    );
}

#[test]
fn a_scale_down_that_would_not_fit_is_held() {
    let mut seen = service(5, OLD);
    for i in [3, 4] {
        set(&mut seen, Member::chunk_server(i), |i| {
            i.marked_for_removal = true
        });
    }
    let fs = seen.fs.as_mut().unwrap();
    fs.capacity_bytes = 10 << 30;
    fs.used_bytes = 8 << 30;
    fs.marked_used_bytes = 4 << 30;
    let held = plan(&spec(3, OLD), &remembered(OLD), &seen, Timing::default());
    assert_eq!(held.actions, vec![]);
    assert!(held.reason.contains("scale-down held"), "{}", held.reason);
}

#[test]
fn an_upgrade_replaces_one_instance_at_a_time_when_healthy() {
    let memory = remembered(OLD);
    let mut seen = service(3, OLD);
    let first = plan(&spec(3, NEW), &memory, &seen, Timing::default());
    assert_eq!(
        first.actions,
        vec![Action::Replace {
            member: Member::metalogger(0),
            image: NEW.into()
        }]
    );
    assert_eq!(first.phase, Phase::Upgrading);
    // The metalogger runs the new image; chunk servers next, from the highest index.
    set(&mut seen, Member::metalogger(0), |i| i.image = NEW.into());
    let second = plan(&spec(3, NEW), &first.memory, &seen, Timing::default());
    assert_eq!(
        second.actions,
        vec![Action::Replace {
            member: Member::chunk_server(2),
            image: NEW.into()
        }]
    );
    // Replaced but its chunks not back at their goal yet: the next one waits.
    set(&mut seen, Member::chunk_server(2), |i| i.image = NEW.into());
    seen.fs.as_mut().unwrap().under_goal_chunks = 3;
    let gated = plan(&spec(3, NEW), &second.memory, &seen, Timing::default());
    assert_eq!((gated.phase, gated.actions.len()), (Phase::Degraded, 0));
    // Just replaced: it settles first.
    seen.fs.as_mut().unwrap().under_goal_chunks = 0;
    set(&mut seen, Member::chunk_server(2), |i| i.for_secs = 1);
    let settling = plan(&spec(3, NEW), &second.memory, &seen, Timing::default());
    assert_eq!(settling.actions, vec![]);
    // Every instance on the new image: healthy, and remembered.
    let done = plan(
        &spec(3, NEW),
        &second.memory,
        &service(3, NEW),
        Timing::default(),
    );
    assert_eq!((done.phase, done.actions.len()), (Phase::Healthy, 0));
    assert_eq!(done.memory.current_image.as_deref(), Some(NEW));
}

#[test]
fn the_master_is_upgraded_last() {
    let mut seen = service(2, NEW);
    set(&mut seen, Member::MASTER, |i| i.image = OLD.into());
    let step = plan(&spec(2, NEW), &remembered(OLD), &seen, Timing::default());
    assert_eq!(
        step.actions,
        vec![Action::Replace {
            member: Member::MASTER,
            image: NEW.into()
        }]
    );
}

#[test]
fn a_version_that_does_not_start_is_rolled_back_and_not_retried() {
    let broken = "localhost/atlas-moosefs:broken";
    let mut seen = service(3, OLD);
    set(&mut seen, Member::metalogger(0), |i| {
        i.image = broken.into();
        i.state = State::Exited;
    });
    let back = plan(&spec(3, broken), &remembered(OLD), &seen, Timing::default());
    assert_eq!(
        back.actions,
        vec![Action::Replace {
            member: Member::metalogger(0),
            image: OLD.into()
        }]
    );
    assert_eq!(back.memory.failed_image.as_deref(), Some(broken));
    assert!(back.events[0].contains("rolled back"), "{:?}", back.events);
    // Rolled back and healthy: the failed image is not tried again.
    let after = plan(
        &spec(3, broken),
        &back.memory,
        &service(3, OLD),
        Timing::default(),
    );
    assert_eq!((after.phase, after.actions.len()), (Phase::Healthy, 0));
    assert!(after.reason.contains("did not start"), "{}", after.reason);
    // A new image in the spec: the upgrade goes on.
    let next = plan(
        &spec(3, NEW),
        &after.memory,
        &service(3, OLD),
        Timing::default(),
    );
    assert_eq!(next.phase, Phase::Upgrading);
}

#[test]
fn an_instance_of_a_new_image_that_never_serves_is_rolled_back_after_the_timeout() {
    let broken = "localhost/atlas-moosefs:broken";
    let mut seen = service(3, OLD);
    set(&mut seen, Member::chunk_server(2), |i| {
        i.image = broken.into();
        i.serving = false;
        i.for_secs = 10;
    });
    let timing = Timing {
        start_timeout_secs: 30,
        settle_secs: 5,
    };
    let early = plan(&spec(3, broken), &remembered(OLD), &seen, timing);
    assert_eq!(early.actions, vec![]);
    set(&mut seen, Member::chunk_server(2), |i| i.for_secs = 31);
    let late = plan(&spec(3, broken), &remembered(OLD), &seen, timing);
    assert_eq!(
        late.actions,
        vec![Action::Replace {
            member: Member::chunk_server(2),
            image: OLD.into()
        }]
    );
}

#[test]
fn an_operator_that_remembers_nothing_rolls_back_to_the_masters_image() {
    let broken = "localhost/atlas-moosefs:broken";
    let mut seen = service(3, NEW);
    set(&mut seen, Member::metalogger(0), |i| {
        i.image = broken.into();
        i.state = State::Exited;
    });
    let back = plan(
        &spec(3, broken),
        &Memory::default(),
        &seen,
        Timing::default(),
    );
    assert_eq!(
        back.actions,
        vec![Action::Replace {
            member: Member::metalogger(0),
            image: NEW.into()
        }]
    );
}

#[test]
fn a_server_gone_for_good_is_forgotten_so_its_chunks_are_copied() {
    let mut seen = service(3, OLD);
    let fs = seen.fs.as_mut().unwrap();
    // 10.0.0.10 is chunkserver-0's address now (it came back there); .99 is gone.
    fs.disconnected = vec!["10.0.0.99:9422".into(), "10.0.0.10:9422".into()];
    fs.under_goal_chunks = 4;
    let step = plan(&spec(3, OLD), &remembered(OLD), &seen, Timing::default());
    assert_eq!(
        step.actions,
        vec![Action::Forget {
            address: "10.0.0.99:9422".into()
        }]
    );
    assert!(
        step.events[0].contains("gone for good"),
        "{:?}",
        step.events
    );
}
