//! The plain-host driver: a `StorageService` run as podman containers on this machine, one
//! per instance (`atlas-mfs-NAME-chunkserver-2`), each on its own named volume (its data,
//! kept when the container is recreated), all on one podman network of their own, the master
//! at a fixed address (`.250`) so the others and the clients find it again after a restart.
//! It observes with `podman container inspect` and the master's `mfscli`, and carries out the
//! reconcile logic's actions with podman. Names come from the validated resource name and
//! the role, never from a path; no argument goes through a shell.

use std::process::{Command, Output};

use serde_json::Value;

use crate::mfscli::{self, MasterView};
use crate::reconcile::{Action, Instance, Member, Observed, Role, State};

/// Labels that tie a container to its service and member.
const SERVICE_LABEL: &str = "dev.atlas.storage-service";
const ROLE_LABEL: &str = "dev.atlas.role";
const INDEX_LABEL: &str = "dev.atlas.index";
/// MooseFS's chunk server port (each container has its own address).
const CHUNK_SERVER_PORT: u16 = 9422;

/// Why podman could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    #[error("cannot run podman: {0}")]
    Spawn(#[from] std::io::Error),
    #[error("`podman {command}` failed: {stderr}")]
    Podman { command: String, stderr: String },
    #[error("podman's answer to `{0}` is not what it documents")]
    Answer(String),
    #[error("{0}")]
    Master(#[from] mfscli::ParseError),
    #[error(
        "image {0} is not on this machine (build it: scripts/moosefs-image, or podman pull it)"
    )]
    NoImage(String),
    #[error("{0}")]
    State(String),
}

/// One service on this machine's podman.
pub struct Podman {
    service: String,
    master_ip: Option<String>,
    /// What the master said at the last observation.
    pub view: MasterView,
}

impl Podman {
    /// The driver of the service `name` (a DNS-1123 label, checked by the caller).
    pub fn new(name: &str) -> Self {
        Podman {
            service: name.to_string(),
            master_ip: None,
            view: MasterView::default(),
        }
    }

    /// The container (and volume) name of a member.
    pub fn container(&self, member: Member) -> String {
        format!("atlas-mfs-{}-{member}", self.service)
    }

    fn network(&self) -> String {
        format!("atlas-mfs-{}", self.service)
    }

    /// The master's address (for `mfsmount -H`), once the network exists.
    pub fn master_address(&mut self) -> Result<String, LocalError> {
        if let Some(ip) = &self.master_ip {
            return Ok(ip.clone());
        }
        let network = self.network();
        if !podman(&["network", "exists", &network])?.status.success() {
            run(&["network", "create", "--label", &self.label(), &network])?;
        }
        let subnet = run(&[
            "network",
            "inspect",
            &network,
            "--format",
            "{{range .Subnets}}{{.Subnet}}{{end}}",
        ])?;
        let base = subnet
            .trim()
            .strip_suffix(".0/24")
            .ok_or_else(|| LocalError::Answer(format!("network inspect {network}: {subnet}")))?;
        let ip = format!("{base}.250");
        self.master_ip = Some(ip.clone());
        Ok(ip)
    }

    fn label(&self) -> String {
        format!("{SERVICE_LABEL}={}", self.service)
    }

    /// Every instance of the service and the master's view of the file system.
    pub fn observe(&mut self) -> Result<Observed, LocalError> {
        let ids = run(&[
            "ps",
            "-a",
            "-q",
            "--filter",
            &format!("label={}", self.label()),
        ])?;
        let ids: Vec<&str> = ids.split_whitespace().collect();
        let mut found = Vec::new();
        if !ids.is_empty() {
            let mut args = vec!["container", "inspect", "--format", "json"];
            args.extend(&ids);
            let json: Value = serde_json::from_str(&run(&args)?)
                .map_err(|_| LocalError::Answer("container inspect".into()))?;
            for container in json.as_array().into_iter().flatten() {
                found.extend(self.seen(container));
            }
        }
        let master_up = found
            .iter()
            .any(|(i, _)| i.member == Member::MASTER && i.state == State::Running);
        let view = if master_up { self.master_view() } else { None };
        let mut instances = Vec::new();
        for (mut instance, ip) in found {
            instance.serving = match (&view, instance.member.role) {
                (None, _) => false,
                (Some(_), Role::Master) => true,
                (Some(v), Role::Metalogger) => v.metaloggers.contains(&ip),
                (Some(v), Role::ChunkServer) => v.chunk_servers.iter().any(|s| s.ip == ip),
            };
            if instance.member.role == Role::ChunkServer && !ip.is_empty() {
                instance.address = Some(format!("{ip}:{CHUNK_SERVER_PORT}"));
            }
            instance.marked_for_removal = view
                .as_ref()
                .is_some_and(|v| v.chunk_servers.iter().any(|s| s.ip == ip && s.marked));
            instances.push(instance);
        }
        instances.sort_by_key(|i| i.member);
        let fs = view.as_ref().map(|v| v.health.clone());
        self.view = view.unwrap_or_default();
        Ok(Observed { instances, fs })
    }

    /// One container as an instance, with its address; `None` for one not of this service's
    /// shape (a label changed by hand).
    fn seen(&self, container: &Value) -> Option<(Instance, String)> {
        let labels = &container["Config"]["Labels"];
        let role = match labels[ROLE_LABEL].as_str()? {
            "master" => Role::Master,
            "metalogger" => Role::Metalogger,
            "chunkserver" => Role::ChunkServer,
            _ => return None,
        };
        let index: u32 = labels[INDEX_LABEL].as_str()?.parse().ok()?;
        let state = &container["State"];
        let (status, since) = match state["Status"].as_str()? {
            "running" => (State::Running, state["StartedAt"].as_str()),
            "created" | "configured" | "initialized" => (State::Starting, None),
            _ => (State::Exited, state["FinishedAt"].as_str()),
        };
        let ip = container["NetworkSettings"]["Networks"][self.network()]["IPAddress"]
            .as_str()
            .unwrap_or("")
            .to_string();
        let instance = Instance {
            member: Member { role, index },
            image: container["ImageName"].as_str()?.to_string(),
            state: status,
            for_secs: since.map(seconds_since).unwrap_or(0),
            serving: false,
            marked_for_removal: false,
            address: None,
        };
        Some((instance, ip))
    }

    /// The master's view, when it answers.
    fn master_view(&self) -> Option<MasterView> {
        let master = self.container(Member::MASTER);
        let text = run(&["exec", &master, "mfs-run", "view"]).ok()?;
        mfscli::view(&text).ok()
    }

    /// Carries out one action.
    pub fn apply(&mut self, action: &Action) -> Result<(), LocalError> {
        match action {
            Action::Start { member, image } => self.start(*member, image),
            Action::Restart { member } => {
                run(&["start", &self.container(*member)])?;
                Ok(())
            }
            Action::Replace { member, image } => {
                // The old instance stays until the new image is known to be here.
                image_here(image)?;
                run(&["rm", "-f", "-t", "10", &self.container(*member)])?;
                self.start(*member, image)
            }
            Action::MarkForRemoval { member } => {
                run(&[
                    "exec",
                    &self.container(*member),
                    "mfs-run",
                    "mark-for-removal",
                ])?;
                Ok(())
            }
            Action::Forget { address } => {
                // `ip:port` from the master's own list, put back as mfscli's `-CRC/ip/port`.
                if !address
                    .chars()
                    .all(|c| c.is_ascii_digit() || c == '.' || c == ':')
                {
                    return Err(LocalError::Answer(format!("a server address {address:?}")));
                }
                let order = format!("-CRC/{}", address.replacen(':', "/", 1));
                let master = self.container(Member::MASTER);
                run(&["exec", &master, "mfscli", "-H", "127.0.0.1", &order])?;
                Ok(())
            }
            Action::Remove { member } => {
                let name = self.container(*member);
                run(&["rm", "-f", "-t", "10", &name])?;
                run(&["volume", "rm", "-f", &name])?;
                Ok(())
            }
        }
    }

    /// Runs a member's container on its volume (kept from an earlier one, or new). A master
    /// whose volume is gone gets the metadata a metalogger kept.
    fn start(&mut self, member: Member, image: &str) -> Result<(), LocalError> {
        image_here(image)?;
        let master = self.master_address()?;
        let name = self.container(member);
        let role = match member.role {
            Role::Master => "master",
            Role::Metalogger => "metalogger",
            Role::ChunkServer => "chunkserver",
        };
        if member.role == Role::Master && !volume_exists(&name)? {
            self.recover_master(&name, image)?;
        }
        let index = member.index.to_string();
        let (service, role_label, index_label) = (
            self.label(),
            format!("{ROLE_LABEL}={role}"),
            format!("{INDEX_LABEL}={index}"),
        );
        let (volume, env) = (format!("{name}:/data"), format!("MFS_MASTER={master}"));
        let network = self.network();
        let mut args = vec![
            "run",
            "-d",
            "--name",
            &name,
            "--label",
            &service,
            "--label",
            &role_label,
            "--label",
            &index_label,
            "--network",
            &network,
            "-v",
            &volume,
            "-e",
            &env,
        ];
        if member.role == Role::Master {
            args.extend(["--ip", master.as_str()]);
        }
        args.extend([image, role]);
        run(&args)?;
        Ok(())
    }

    /// A new master volume with the metadata and change logs of the first metalogger; nothing
    /// when there is no metalogger (a new file system). A metalogger without a copy yet is an
    /// error: an empty master over chunk servers that hold data would lose it all.
    fn recover_master(&self, volume: &str, image: &str) -> Result<(), LocalError> {
        let metalogger = self.container(Member::metalogger(0));
        if !volume_exists(&metalogger)? {
            return Ok(());
        }
        run(&["volume", "create", volume])?;
        let (from, to) = (format!("{metalogger}:/from:ro"), format!("{volume}:/data"));
        let copied = podman(&[
            "run",
            "--rm",
            "-v",
            &from,
            "-v",
            &to,
            image,
            "recover-from",
            "/from",
        ])?;
        if !copied.status.success() {
            run(&["volume", "rm", "-f", volume])?;
            return Err(LocalError::State(format!(
                "the master's data is gone and cannot be recovered from metalogger-0: {}; not starting an empty file system over chunk servers that hold data (put the master's metadata back in volume {volume}, or remove the service with --down)",
                String::from_utf8_lossy(&copied.stderr).trim()
            )));
        }
        Ok(())
    }

    /// Removes every container, volume and the network of the service.
    pub fn delete(&mut self) -> Result<(), LocalError> {
        let filter = format!("label={}", self.label());
        let ids = run(&["ps", "-a", "-q", "--filter", &filter])?;
        for id in ids.split_whitespace() {
            run(&["rm", "-f", "-t", "5", id])?;
        }
        let prefix = format!("atlas-mfs-{}-", self.service);
        let volumes = run(&["volume", "ls", "--format", "{{.Name}}"])?;
        for volume in volumes.lines().filter(|v| owned_volume(v, &prefix)) {
            run(&["volume", "rm", "-f", volume])?;
        }
        let network = self.network();
        if podman(&["network", "exists", &network])?.status.success() {
            run(&["network", "rm", "-f", &network])?;
        }
        self.master_ip = None;
        Ok(())
    }
}

/// A volume of this service: its prefix and then a member's name.
fn owned_volume(volume: &str, prefix: &str) -> bool {
    volume.strip_prefix(prefix).is_some_and(|member| {
        member == "master"
            || ["metalogger-", "chunkserver-"].iter().any(|role| {
                member
                    .strip_prefix(role)
                    .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
            })
    })
}

/// The image is in this machine's podman store (local mode never pulls).
fn image_here(image: &str) -> Result<(), LocalError> {
    if podman(&["image", "exists", image])?.status.success() {
        return Ok(());
    }
    Err(LocalError::NoImage(image.to_string()))
}

fn volume_exists(name: &str) -> Result<bool, LocalError> {
    Ok(podman(&["volume", "exists", name])?.status.success())
}

fn podman(args: &[&str]) -> Result<Output, LocalError> {
    Ok(Command::new("podman").args(args).output()?)
}

/// Runs podman; its stdout when it succeeds.
fn run(args: &[&str]) -> Result<String, LocalError> {
    let output = podman(args)?;
    if !output.status.success() {
        return Err(LocalError::Podman {
            command: args.join(" "),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Seconds since a podman time (RFC 3339 with nanoseconds); 0 when unreadable.
fn seconds_since(time: &str) -> u64 {
    let Ok(then) = time.parse::<jiff::Timestamp>() else {
        return 0;
    };
    jiff::Timestamp::now().duration_since(then).as_secs().max(0) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_this_services_volumes_are_its_own() {
        let prefix = "atlas-mfs-scratch-";
        for own in [
            "atlas-mfs-scratch-master",
            "atlas-mfs-scratch-chunkserver-12",
        ] {
            assert!(owned_volume(own, prefix), "{own}");
        }
        for other in [
            "atlas-mfs-scratch-2-master",
            "atlas-mfs-scratch-chunkserver-",
            "atlas-mfs-scratchy-master",
            "atlas-mfs-scratch-chunkserver-1x",
        ] {
            assert!(!owned_volume(other, prefix), "{other}");
        }
    }

    #[test]
    fn a_member_names_its_container() {
        let podman = Podman::new("scratch");
        assert_eq!(
            podman.container(Member::chunk_server(3)),
            "atlas-mfs-scratch-chunkserver-3"
        );
        assert_eq!(podman.container(Member::MASTER), "atlas-mfs-scratch-master");
    }
}
