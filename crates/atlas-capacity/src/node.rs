//! A node as a scheduler reports it, and its class: `down` when the scheduler cannot use it,
//! `idle` when nothing is allocated on it, and, for a node with allocations, `busy` or
//! `under-used` by its measured use against the thresholds, `unknown` without a measurement
//! (a guess is never shown as a measurement).

use serde::Serialize;

/// How many of something a node has, and how many are allocated to jobs or pods.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Resources {
    pub total: f64,
    pub allocated: f64,
}

impl Resources {
    pub fn new(total: f64, allocated: f64) -> Resources {
        Resources { total, allocated }
    }
}

/// What the scheduler says about the node (as JSON: `idle`, `mixed`, `allocated`, `down`, or
/// the scheduler's own word).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeState {
    Idle,
    /// Some of it allocated (Slurm's MIXED).
    Mixed,
    Allocated,
    /// Not usable: down, drained, failed, not Ready.
    Down,
    /// A state this code does not know, as the scheduler wrote it.
    Other(String),
}

impl NodeState {
    pub fn as_str(&self) -> &str {
        match self {
            NodeState::Idle => "idle",
            NodeState::Mixed => "mixed",
            NodeState::Allocated => "allocated",
            NodeState::Down => "down",
            NodeState::Other(state) => state,
        }
    }
}

impl Serialize for NodeState {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// The node's measured use (from a node agent), over a window.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Usage {
    /// CPU in use, in cores (not a share), averaged over the window.
    pub cores: f64,
    /// How long the window is.
    pub window_minutes: f64,
}

/// One node of a target.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Node {
    pub name: String,
    pub state: NodeState,
    /// The scheduler's own words for the state (`IDLE+DRAIN`, `Ready`).
    pub scheduler_state: String,
    pub cpus: Resources,
    pub memory_mib: Resources,
    pub gpus: Resources,
    /// Why the scheduler holds it (Slurm's Reason), when it says.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scheduler_reason: Option<String>,
    /// Measured use, when a node agent reported it.
    pub used: Option<Usage>,
    /// Where the node is reached (Slurm's NodeAddr), for its node agent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// Why its use is not measured, when a node agent was asked and did not answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage_note: Option<String>,
}

impl Node {
    /// A node with nothing known yet.
    pub fn new(name: impl Into<String>) -> Node {
        Node {
            name: name.into(),
            state: NodeState::Other("unknown".into()),
            scheduler_state: String::new(),
            cpus: Resources::default(),
            memory_mib: Resources::default(),
            gpus: Resources::default(),
            scheduler_reason: None,
            used: None,
            address: None,
            usage_note: None,
        }
    }
}

/// A node's class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Class {
    Idle,
    UnderUsed,
    Busy,
    Down,
    Unknown,
}

impl Class {
    pub fn as_str(self) -> &'static str {
        match self {
            Class::Idle => "idle",
            Class::UnderUsed => "under-used",
            Class::Busy => "busy",
            Class::Down => "down",
            Class::Unknown => "unknown",
        }
    }
}

/// When an allocated node counts as under-used: using less than `percent` of what is allocated
/// on it over at least `minutes`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Thresholds {
    pub percent: f64,
    pub minutes: f64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            percent: 25.0,
            minutes: 10.0,
        }
    }
}

/// The node's class and why.
pub fn classify(node: &Node, thresholds: &Thresholds) -> (Class, String) {
    match &node.state {
        NodeState::Down => {
            let why = node
                .scheduler_reason
                .as_deref()
                .unwrap_or("no reason given");
            return (Class::Down, format!("{} ({why})", node.scheduler_state));
        }
        NodeState::Other(state) => {
            return (Class::Unknown, format!("the scheduler says `{state}`"));
        }
        _ => {}
    }
    let allocated = node.cpus.allocated > 0.0 || node.gpus.allocated > 0.0;
    if !allocated {
        return (Class::Idle, "nothing allocated".into());
    }
    let what = format!(
        "{} of {} CPUs allocated",
        node.cpus.allocated, node.cpus.total
    );
    let Some(used) = node.used else {
        let why = node
            .usage_note
            .as_deref()
            .map(|n| format!(" ({n})"))
            .unwrap_or_default();
        return (
            Class::Unknown,
            format!("{what}; its use is not measured{why}"),
        );
    };
    if used.window_minutes < thresholds.minutes {
        return (
            Class::Unknown,
            format!(
                "{what}; measured for {:.1} of the {} minutes that decide",
                used.window_minutes, thresholds.minutes
            ),
        );
    }
    let percent = 100.0 * used.cores / node.cpus.allocated.max(f64::MIN_POSITIVE);
    let measured = format!("{what}, {:.2} cores used ({percent:.0} %)", used.cores);
    if percent < thresholds.percent {
        (
            Class::UnderUsed,
            format!("{measured} < {} %", thresholds.percent),
        )
    } else {
        (Class::Busy, measured)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(state: NodeState, cpus: (f64, f64), used: Option<f64>) -> Node {
        Node {
            state,
            cpus: Resources::new(cpus.0, cpus.1),
            used: used.map(|cores| Usage {
                cores,
                window_minutes: 15.0,
            }),
            ..Node::new("n1")
        }
    }

    #[test]
    fn classes_follow_state_allocation_and_measured_use() {
        let t = Thresholds::default();
        let class = |n: &Node| classify(n, &t).0;
        assert_eq!(class(&node(NodeState::Down, (2.0, 0.0), None)), Class::Down);
        assert_eq!(class(&node(NodeState::Idle, (2.0, 0.0), None)), Class::Idle);
        assert_eq!(
            class(&node(NodeState::Allocated, (4.0, 4.0), None)),
            Class::Unknown
        );
        assert_eq!(
            class(&node(NodeState::Allocated, (4.0, 4.0), Some(0.5))),
            Class::UnderUsed
        );
        assert_eq!(
            class(&node(NodeState::Mixed, (4.0, 2.0), Some(1.9))),
            Class::Busy
        );
        let (_, why) = classify(&node(NodeState::Allocated, (4.0, 4.0), Some(0.5)), &t);
        assert!(why.contains("0.50 cores used (12 %) < 25 %"), "{why}");
    }

    #[test]
    fn a_short_measurement_does_not_decide() {
        let mut n = node(NodeState::Allocated, (4.0, 4.0), Some(0.1));
        n.used.as_mut().unwrap().window_minutes = 2.0;
        let (class, why) = classify(&n, &Thresholds::default());
        assert_eq!(class, Class::Unknown);
        assert!(why.contains("2.0 of the 10 minutes"), "{why}");
    }
}
