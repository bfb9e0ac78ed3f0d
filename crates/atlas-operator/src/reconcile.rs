//! The reconcile logic, pure: from a `StorageService`'s spec, the operator's memory of it (its
//! last status) and what a driver observed (each instance's state and image, the master's
//! view of the file system), the next safe step. One piece of code for both drivers
//! (Kubernetes, podman on plain hosts): a driver turns each [`Action`] into its own calls.
//!
//! The rules, in order: the master first (nothing works without it); crashed instances
//! recreated with their data (a chunk server that comes back brings its chunks back to their
//! goal); missing chunk servers started (scale up); nothing more while an instance starts; a
//! scale-down marks the servers to go "for removal" (MooseFS copies their chunks elsewhere)
//! and removes them only once no chunk depends on them; an upgrade replaces one instance at a
//! time, each only once no chunk is under its goal, and an instance of the new image that does
//! not start is rolled back and the upgrade stopped.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::spec::StorageServiceSpec;

/// What a MooseFS instance is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Role {
    Master,
    Metalogger,
    ChunkServer,
}

/// One instance of the service: its role and index (0 for the master).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Member {
    pub role: Role,
    pub index: u32,
}

impl Member {
    pub const MASTER: Member = Member {
        role: Role::Master,
        index: 0,
    };
    pub fn chunk_server(index: u32) -> Member {
        Member {
            role: Role::ChunkServer,
            index,
        }
    }
    pub fn metalogger(index: u32) -> Member {
        Member {
            role: Role::Metalogger,
            index,
        }
    }
}

impl fmt::Display for Member {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.role {
            Role::Master => write!(f, "master"),
            Role::Metalogger => write!(f, "metalogger-{}", self.index),
            Role::ChunkServer => write!(f, "chunkserver-{}", self.index),
        }
    }
}

/// An instance's process, as the driver saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum State {
    /// Created, not yet running or not yet serving.
    Starting,
    Running,
    /// Its process ended (crashed, killed); its data is kept.
    Exited,
}

/// One instance as observed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    pub member: Member,
    pub image: String,
    pub state: State,
    /// Seconds in its present state.
    pub for_secs: u64,
    /// Serving: the master answers; a chunk server or metalogger is connected to it.
    pub serving: bool,
    /// A chunk server marked for removal (its chunks being copied elsewhere).
    pub marked_for_removal: bool,
    /// Where the master sees it (`ip:port`), when known.
    pub address: Option<String>,
}

/// The file system as its master reports it (`mfscli`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FsHealth {
    /// Chunks with no copy on any connected server.
    pub missing_chunks: u64,
    /// Chunks with fewer copies than their goal, counting copies on servers marked for removal.
    pub under_goal_chunks: u64,
    /// The same, not counting them: 0 means no chunk depends on a server marked for removal.
    pub under_goal_without_marked: u64,
    pub chunks: u64,
    pub capacity_bytes: u64,
    pub used_bytes: u64,
    /// Bytes on servers marked for removal, which must fit on the others.
    pub marked_used_bytes: u64,
    /// Chunk servers the master still lists though disconnected (`ip:port`): it waits for
    /// them before copying their chunks elsewhere.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub disconnected: Vec<String>,
}

/// What a driver saw.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observed {
    pub instances: Vec<Instance>,
    /// `None` when the master does not answer.
    pub fs: Option<FsHealth>,
}

/// One step for a driver to take.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "action")]
pub enum Action {
    /// Create an instance that does not exist (with new, empty storage, or its kept storage).
    Start { member: Member, image: String },
    /// Recreate a crashed instance on its kept storage, with the same image.
    Restart { member: Member },
    /// Replace a running instance by one of another image, on its kept storage.
    Replace { member: Member, image: String },
    /// Ask MooseFS to copy a chunk server's chunks to the others.
    MarkForRemoval { member: Member },
    /// Stop an instance and delete it and its storage.
    Remove { member: Member },
    /// Tell the master a disconnected chunk server (`ip:port`) is gone for good, so that it
    /// copies the chunks it held instead of waiting for it.
    Forget { address: String },
}

/// What the operator remembers between passes (kept in the resource's status).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Memory {
    /// The image the whole service last ran, healthy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_image: Option<String>,
    /// An image that did not start: not tried again until the spec names another.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_image: Option<String>,
    /// Restarts per instance (`chunkserver-2`: 1).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub restarts: BTreeMap<String, u32>,
}

/// The service's phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Phase {
    Pending,
    Healthy,
    Degraded,
    Scaling,
    Upgrading,
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// The outcome of one pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub actions: Vec<Action>,
    pub phase: Phase,
    /// Why the service is in this phase, or what it waits for.
    pub reason: String,
    pub memory: Memory,
    /// What happened that an operator should read (a rollback, a refused scale-down).
    pub events: Vec<String>,
}

/// How long an instance of a new image may take to start before it is rolled back, and how
/// long a replaced instance must have run before the next one is touched.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub start_timeout_secs: u64,
    pub settle_secs: u64,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            start_timeout_secs: 60,
            settle_secs: 5,
        }
    }
}

/// The next safe step for `spec`, given what the operator remembers and what it observed.
pub fn plan(spec: &StorageServiceSpec, memory: &Memory, seen: &Observed, timing: Timing) -> Plan {
    let mut pass = Pass::new(spec, memory, seen, timing);
    pass.run();
    pass.finish()
}

/// The state of one pass: what it decided so far.
struct Pass<'a> {
    spec: &'a StorageServiceSpec,
    seen: &'a Observed,
    timing: Timing,
    memory: Memory,
    target: String,
    actions: Vec<Action>,
    events: Vec<String>,
    phase: Phase,
    reason: String,
}

impl<'a> Pass<'a> {
    fn new(
        spec: &'a StorageServiceSpec,
        memory: &Memory,
        seen: &'a Observed,
        timing: Timing,
    ) -> Self {
        let mut memory = memory.clone();
        // The master's image, while it serves, is the last good one: the master is upgraded
        // last, once every other instance runs the new image and serves. (So an operator that
        // lost its memory, or a pass whose status was not written, still knows it.)
        if let Some(master) = seen
            .instances
            .iter()
            .find(|i| i.member == Member::MASTER && i.state == State::Running && i.serving)
        {
            memory.current_image = Some(master.image.clone());
        }
        // An image that failed is not tried again until the spec names another one.
        let target = match (&memory.failed_image, &memory.current_image) {
            (Some(failed), Some(current)) if *failed == spec.image => current.clone(),
            _ => spec.image.clone(),
        };
        Pass {
            spec,
            seen,
            timing,
            memory,
            target,
            actions: Vec::new(),
            events: Vec::new(),
            phase: Phase::Healthy,
            reason: String::new(),
        }
    }

    fn finish(self) -> Plan {
        Plan {
            actions: self.actions,
            phase: self.phase,
            reason: self.reason,
            memory: self.memory,
            events: self.events,
        }
    }

    fn wait(&mut self, phase: Phase, reason: impl Into<String>) {
        self.phase = phase;
        self.reason = reason.into();
    }

    fn instance(&self, member: Member) -> Option<&'a Instance> {
        self.seen.instances.iter().find(|i| i.member == member)
    }

    fn wanted(&self) -> Vec<Member> {
        let mut members = vec![Member::MASTER];
        members.extend((0..self.spec.metaloggers).map(Member::metalogger));
        members.extend((0..self.spec.chunk_servers).map(Member::chunk_server));
        members
    }

    fn is_wanted(&self, member: Member) -> bool {
        match member.role {
            Role::Master => member.index == 0,
            Role::Metalogger => member.index < self.spec.metaloggers,
            Role::ChunkServer => member.index < self.spec.chunk_servers,
        }
    }

    /// The image an instance runs once healthy: the one it had, else the target.
    fn image_for(&self, member: Member) -> String {
        self.instance(member)
            .map(|i| i.image.clone())
            .or_else(|| self.memory.current_image.clone())
            .unwrap_or_else(|| self.target.clone())
    }

    fn run(&mut self) {
        if !self.master() || !self.crashed() || !self.missing() || !self.started() {
            return;
        }
        let Some(fs) = self.seen.fs.clone() else {
            return self.wait(Phase::Pending, "the master does not answer yet");
        };
        if !self.forget(&fs) || !self.scale_down(&fs) {
            return;
        }
        if fs.under_goal_chunks > 0 || fs.missing_chunks > 0 {
            return self.wait(
                Phase::Degraded,
                format!(
                    "{} chunks under their goal ({} missing): waiting for MooseFS to copy them",
                    fs.under_goal_chunks, fs.missing_chunks
                ),
            );
        }
        self.upgrade();
    }

    /// The master first: without it nothing else can be judged. True when it serves.
    fn master(&mut self) -> bool {
        match self.instance(Member::MASTER) {
            None => {
                let image = self.image_for(Member::MASTER);
                self.start(Member::MASTER, image);
                self.wait(Phase::Pending, "starting the master");
                false
            }
            Some(master) if master.state == State::Exited => {
                if !self.rolled_back(master) {
                    self.restart(master.member);
                }
                self.wait(Phase::Degraded, "the master is down: restarting it");
                false
            }
            Some(master) if master.state == State::Starting || !master.serving => {
                if !self.rolled_back(master) {
                    self.wait(Phase::Pending, "waiting for the master to serve");
                }
                false
            }
            Some(_) => true,
        }
    }

    /// Crashed instances restarted on their data (or rolled back). True when none crashed.
    fn crashed(&mut self) -> bool {
        let seen = self.seen;
        let crashed: Vec<&Instance> = seen
            .instances
            .iter()
            .filter(|i| i.state == State::Exited && i.member.role != Role::Master)
            .collect();
        for instance in &crashed {
            if !self.rolled_back(instance) {
                self.restart(instance.member);
            }
        }
        if crashed.is_empty() {
            return true;
        }
        let names: Vec<String> = crashed.iter().map(|i| i.member.to_string()).collect();
        self.wait(
            Phase::Degraded,
            format!("{} down: recreating on its data", names.join(", ")),
        );
        false
    }

    /// An instance of the new image that did not start is put back on the last good image,
    /// and that image is not tried again. True when it did so.
    fn rolled_back(&mut self, instance: &Instance) -> bool {
        let Some(current) = self.memory.current_image.clone() else {
            return false;
        };
        let failing = instance.state == State::Exited
            || (instance.for_secs >= self.timing.start_timeout_secs
                && (instance.state == State::Starting || !instance.serving));
        if instance.image == current || !failing {
            return false;
        }
        let failed = instance.image.clone();
        self.events.push(format!(
            "{} did not start with {failed}: rolled back to {current}; the upgrade is stopped",
            instance.member
        ));
        self.memory.failed_image = Some(failed);
        self.target = current.clone();
        self.actions.push(Action::Replace {
            member: instance.member,
            image: current,
        });
        true
    }

    /// Wanted instances that do not exist are started. True when none was missing.
    fn missing(&mut self) -> bool {
        let missing: Vec<Member> = self
            .wanted()
            .into_iter()
            .filter(|m| self.instance(*m).is_none())
            .collect();
        for member in &missing {
            let image = self.image_for(*member);
            self.start(*member, image);
        }
        if missing.is_empty() {
            return true;
        }
        let names: Vec<String> = missing.iter().map(Member::to_string).collect();
        self.wait(Phase::Scaling, format!("starting {}", names.join(", ")));
        false
    }

    /// Nothing more while an instance starts or is not yet serving. True when all serve.
    fn started(&mut self) -> bool {
        let seen = self.seen;
        for instance in &seen.instances {
            if instance.state == State::Running && instance.serving {
                continue;
            }
            if !self.rolled_back(instance) {
                self.wait(
                    Phase::Pending,
                    format!("waiting for {} to serve", instance.member),
                );
            }
            return false;
        }
        true
    }

    /// Disconnected servers that no instance is any more (lost with their data, or come back
    /// at another address) are forgotten. True when there are none.
    fn forget(&mut self, fs: &FsHealth) -> bool {
        let seen = self.seen;
        let gone: Vec<&String> = fs
            .disconnected
            .iter()
            .filter(|a| {
                !seen
                    .instances
                    .iter()
                    .any(|i| i.address.as_ref() == Some(*a))
            })
            .collect();
        for address in &gone {
            self.actions.push(Action::Forget {
                address: address.to_string(),
            });
        }
        if gone.is_empty() {
            return true;
        }
        let list: Vec<&str> = gone.iter().map(|a| a.as_str()).collect();
        self.events.push(format!(
            "chunk servers gone for good: {}; their chunks are copied to the others",
            list.join(", ")
        ));
        self.wait(Phase::Degraded, "forgetting chunk servers that are gone");
        false
    }

    /// Chunk servers beyond the wanted count: marked for removal, then removed once no chunk
    /// depends on them. True when there are none left.
    fn scale_down(&mut self, fs: &FsHealth) -> bool {
        let seen = self.seen;
        let extra: Vec<&Instance> = seen
            .instances
            .iter()
            .filter(|i| !self.is_wanted(i.member))
            .collect();
        if extra.is_empty() {
            return true;
        }
        let unmarked: Vec<&&Instance> = extra
            .iter()
            .filter(|i| i.member.role == Role::ChunkServer && !i.marked_for_removal)
            .collect();
        if !unmarked.is_empty() {
            for instance in unmarked {
                self.actions.push(Action::MarkForRemoval {
                    member: instance.member,
                });
            }
            self.wait(
                Phase::Scaling,
                "marking chunk servers for removal: MooseFS copies their chunks to the others",
            );
            return false;
        }
        let free = fs.capacity_bytes.saturating_sub(fs.used_bytes);
        if fs.marked_used_bytes > free {
            self.wait(
                Phase::Scaling,
                format!(
                    "scale-down held: the servers to remove hold {} bytes, the others have {} free",
                    fs.marked_used_bytes, free
                ),
            );
            return false;
        }
        if fs.under_goal_without_marked > 0 || fs.missing_chunks > 0 {
            self.wait(
                Phase::Scaling,
                format!(
                    "{} chunks still depend on servers marked for removal",
                    fs.under_goal_without_marked
                ),
            );
            return false;
        }
        for instance in extra {
            self.actions.push(Action::Remove {
                member: instance.member,
            });
        }
        self.wait(Phase::Scaling, "removing drained chunk servers");
        false
    }

    /// One instance moved to the target image, the last ones first: metaloggers, chunk
    /// servers from the highest index, the master last.
    fn upgrade(&mut self) {
        let seen = self.seen;
        if let Some(young) = seen
            .instances
            .iter()
            .find(|i| i.for_secs < self.timing.settle_secs && i.image == self.target)
            .filter(|_| seen.instances.iter().any(|i| i.image != self.target))
        {
            return self.wait(
                Phase::Upgrading,
                format!("letting {} settle before the next", young.member),
            );
        }
        let mut stale: Vec<&Instance> = seen
            .instances
            .iter()
            .filter(|i| i.image != self.target)
            .collect();
        stale.sort_by_key(|i| upgrade_order(i.member));
        match stale.first() {
            Some(next) => {
                let left = stale.len();
                self.actions.push(Action::Replace {
                    member: next.member,
                    image: self.target.clone(),
                });
                self.wait(
                    Phase::Upgrading,
                    format!(
                        "{} to {} ({left} left, each once no chunk is under its goal)",
                        next.member, self.target
                    ),
                );
            }
            None => self.healthy(),
        }
    }

    fn healthy(&mut self) {
        self.memory.current_image = Some(self.target.clone());
        self.phase = Phase::Healthy;
        self.reason = match &self.memory.failed_image {
            Some(failed) if *failed == self.spec.image => format!(
                "healthy on {}; {failed} did not start and was rolled back",
                self.target
            ),
            _ => "every chunk at its goal".into(),
        };
    }

    fn start(&mut self, member: Member, image: String) {
        self.actions.push(Action::Start { member, image });
    }

    fn restart(&mut self, member: Member) {
        *self.memory.restarts.entry(member.to_string()).or_insert(0) += 1;
        self.actions.push(Action::Restart { member });
    }
}

/// An action in a sentence.
pub fn describe(action: &Action) -> String {
    match action {
        Action::Start { member, image } => format!("start {member} ({image})"),
        Action::Restart { member } => format!("restart {member} on its data"),
        Action::Replace { member, image } => format!("replace {member} by {image}"),
        Action::MarkForRemoval { member } => format!("mark {member} for removal"),
        Action::Remove { member } => format!("remove {member} and its data"),
        Action::Forget { address } => format!("tell the master {address} is gone for good"),
    }
}

/// The order of an upgrade: metaloggers, then chunk servers from the highest index, the
/// master last (its restart stalls the clients).
fn upgrade_order(member: Member) -> (u8, std::cmp::Reverse<u32>) {
    let rank = match member.role {
        Role::Metalogger => 0,
        Role::ChunkServer => 1,
        Role::Master => 2,
    };
    (rank, std::cmp::Reverse(member.index))
}

#[cfg(test)]
#[path = "reconcile_tests.rs"]
mod tests;
