//! The Kubernetes driver's observation (the StatefulSets, their pods, the master's view from
//! its pod) and its actions (replicas, images, pod deletions, an exec for a mark or a
//! forget).

use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use kube::api::{AttachParams, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::Api;
use serde_json::json;

use super::{api, Cluster, ClusterError, SERVICE_LABEL};
use crate::mfscli;
use crate::reconcile::{Action, Instance, Member, Observed, Role, State};

/// Container waiting reasons that mean it does not start.
const NOT_STARTING: [&str; 6] = [
    "CrashLoopBackOff",
    "Error",
    "ErrImagePull",
    "ImagePullBackOff",
    "CreateContainerError",
    "InvalidImageName",
];

impl Cluster {
    /// Every instance (a pod, or one its StatefulSet is creating) and the master's view.
    pub async fn observe(&mut self) -> Result<Observed, ClusterError> {
        let selector = format!("{SERVICE_LABEL}={}", self.name);
        let pods = self
            .pods()
            .list(&ListParams::default().labels(&selector))
            .await
            .map_err(api(format!("list pods of {}", self.name)))?;
        let mut instances = Vec::new();
        for role in [Role::Master, Role::Metalogger, Role::ChunkServer] {
            let Some(set) = self
                .sets()
                .get_opt(&self.set_name(role))
                .await
                .map_err(api(format!("StatefulSet {}", self.set_name(role))))?
            else {
                continue;
            };
            let spec = set.spec.unwrap_or_default();
            let template_image = spec
                .template
                .spec
                .and_then(|s| s.containers.first().and_then(|c| c.image.clone()))
                .unwrap_or_default();
            for index in 0..spec.replicas.unwrap_or(0).max(0) as u32 {
                let member = Member { role, index };
                let pod = pods
                    .items
                    .iter()
                    .find(|p| p.metadata.name.as_deref() == Some(&self.pod_name(member)));
                instances.push(self.instance(member, pod, &template_image));
            }
        }
        self.master_address = instances
            .iter()
            .find(|i| i.member == Member::MASTER)
            .and_then(|_| self.host_of(&pods.items, Member::MASTER))
            .map(|ip| format!("{ip}:{}", self.port + 2));
        let master_up = instances
            .iter()
            .any(|i| i.member == Member::MASTER && i.state == State::Running);
        let view = if master_up {
            self.master_view().await
        } else {
            None
        };
        for instance in &mut instances {
            self.serving(instance, view.as_ref());
        }
        let fs = view.as_ref().map(|v| v.health.clone());
        self.view = view.unwrap_or_default();
        Ok(Observed { instances, fs })
    }

    fn host_of(&self, pods: &[Pod], member: Member) -> Option<String> {
        pods.iter()
            .find(|p| p.metadata.name.as_deref() == Some(&self.pod_name(member)))
            .and_then(|p| p.status.as_ref()?.host_ip.clone())
    }

    /// An instance from its pod (none yet: the StatefulSet is creating it).
    fn instance(&self, member: Member, pod: Option<&Pod>, template_image: &str) -> Instance {
        let mut instance = Instance {
            member,
            image: template_image.to_string(),
            state: State::Starting,
            for_secs: 0,
            serving: false,
            marked_for_removal: false,
            address: None,
        };
        let Some(pod) = pod else {
            return instance;
        };
        if let Some(image) = pod
            .spec
            .as_ref()
            .and_then(|s| s.containers.first()?.image.clone())
        {
            instance.image = image;
        }
        let created = pod.metadata.creation_timestamp.as_ref().map(|t| t.0);
        let status = pod.status.as_ref();
        let container = status
            .and_then(|s| s.container_statuses.as_ref())
            .and_then(|c| c.first());
        let state = container.and_then(|c| c.state.as_ref());
        let since = |t: Option<jiff::Timestamp>| {
            t.map(|t| jiff::Timestamp::now().duration_since(t).as_secs().max(0) as u64)
                .unwrap_or(0)
        };
        if pod.metadata.deletion_timestamp.is_some() {
            return instance;
        }
        if let Some(running) = state.and_then(|s| s.running.as_ref()) {
            instance.state = State::Running;
            instance.for_secs = since(running.started_at.as_ref().map(|t| t.0));
        } else if state.and_then(|s| s.terminated.as_ref()).is_some()
            || state
                .and_then(|s| s.waiting.as_ref()?.reason.clone())
                .is_some_and(|r| NOT_STARTING.contains(&r.as_str()))
        {
            instance.state = State::Exited;
            instance.for_secs = since(created);
        } else {
            instance.for_secs = since(created);
        }
        if let Some(ip) = status.and_then(|s| s.host_ip.clone()) {
            if member.role == Role::ChunkServer {
                instance.address = Some(format!("{ip}:{}", self.port + 3 + member.index as u16));
            }
        }
        instance
    }

    /// Whether the master sees the instance (a chunk server by its port).
    fn serving(&self, instance: &mut Instance, view: Option<&mfscli::MasterView>) {
        let Some(view) = view else {
            return;
        };
        match instance.member.role {
            Role::Master => instance.serving = instance.state == State::Running,
            Role::Metalogger => {
                instance.serving = view.metaloggers.len() > instance.member.index as usize
            }
            Role::ChunkServer => {
                let port = self.port + 3 + instance.member.index as u16;
                if let Some(row) = view.chunk_servers.iter().find(|r| r.port == port) {
                    instance.serving = true;
                    instance.marked_for_removal = row.marked;
                    instance.address = Some(format!("{}:{port}", row.ip));
                }
            }
        }
    }

    async fn master_view(&self) -> Option<mfscli::MasterView> {
        let out = self
            .exec(&self.pod_name(Member::MASTER), &["mfs-run", "view"])
            .await
            .ok()?;
        mfscli::view(&out).ok()
    }

    /// Runs a command in a pod's container; its stdout.
    async fn exec(&self, pod: &str, command: &[&str]) -> Result<String, ClusterError> {
        let params = AttachParams::default()
            .container("mfs")
            .stdout(true)
            .stderr(true);
        let mut process = self
            .pods()
            .exec(pod, command.to_vec(), &params)
            .await
            .map_err(|e| ClusterError::Exec(format!("cannot exec in pod {pod}: {e}")))?;
        let status = process.take_status();
        let mut out = String::new();
        if let Some(mut stdout) = process.stdout() {
            let _ = tokio::io::AsyncReadExt::read_to_string(&mut stdout, &mut out).await;
        }
        let mut err = String::new();
        if let Some(mut stderr) = process.stderr() {
            let _ = tokio::io::AsyncReadExt::read_to_string(&mut stderr, &mut err).await;
        }
        let status = match status {
            Some(status) => status.await,
            None => None,
        };
        let _ = process.join().await;
        if status.as_ref().and_then(|s| s.status.as_deref()) != Some("Success") {
            let why = status.and_then(|s| s.message).unwrap_or_default();
            return Err(ClusterError::Exec(format!(
                "`{}` in pod {pod} failed: {why} {}",
                command.join(" "),
                err.trim()
            )));
        }
        Ok(out)
    }

    /// Carries out one action.
    pub async fn apply(&self, action: &Action) -> Result<(), ClusterError> {
        match action {
            Action::Start { member, image } => self.start(*member, image).await,
            Action::Restart { member } => self.delete_pod(*member).await,
            Action::Replace { member, image } => {
                self.set_image(member.role, image).await?;
                self.delete_pod(*member).await
            }
            Action::MarkForRemoval { member } => {
                let pod = self.pod_name(*member);
                self.exec(&pod, &["mfs-run", "mark-for-removal"]).await?;
                Ok(())
            }
            Action::Remove { member } => self.remove(*member).await,
            Action::Forget { address } => {
                if !address
                    .chars()
                    .all(|c| c.is_ascii_digit() || c == '.' || c == ':')
                {
                    return Err(ClusterError::Exec(format!("a server address {address:?}")));
                }
                let order = format!("-CRC/{}", address.replacen(':', "/", 1));
                let port = (self.port + 2).to_string();
                let pod = self.pod_name(Member::MASTER);
                self.exec(&pod, &["mfscli", "-H", "127.0.0.1", "-P", &port, &order])
                    .await?;
                Ok(())
            }
        }
    }

    /// The role's StatefulSet grown to hold `member` (created with `image` when absent).
    async fn start(&self, member: Member, image: &str) -> Result<(), ClusterError> {
        let name = self.set_name(member.role);
        let sets = self.sets();
        match sets.get_opt(&name).await.map_err(api(&name))? {
            None => {
                let set = self.set(member.role, member.index + 1, image);
                sets.create(&PostParams::default(), &set)
                    .await
                    .map_err(api(format!("create StatefulSet {name}")))?;
            }
            Some(set) => {
                let replicas = set.spec.and_then(|s| s.replicas).unwrap_or(0).max(0) as u32;
                self.replicas(member.role, replicas.max(member.index + 1))
                    .await?;
            }
        }
        Ok(())
    }

    async fn replicas(&self, role: Role, replicas: u32) -> Result<(), ClusterError> {
        let name = self.set_name(role);
        let patch = json!({ "spec": { "replicas": replicas } });
        self.sets()
            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(api(format!("scale StatefulSet {name}")))?;
        Ok(())
    }

    async fn set_image(&self, role: Role, image: &str) -> Result<(), ClusterError> {
        let name = self.set_name(role);
        let patch = json!({ "spec": { "template": { "spec": {
            "containers": [{ "name": "mfs", "image": image }] } } } });
        self.sets()
            .patch(&name, &PatchParams::default(), &Patch::Strategic(&patch))
            .await
            .map_err(api(format!("set the image of StatefulSet {name}")))?;
        Ok(())
    }

    async fn delete_pod(&self, member: Member) -> Result<(), ClusterError> {
        let pod = self.pod_name(member);
        match self.pods().delete(&pod, &DeleteParams::default()).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
            Err(e) => Err(api(format!("delete pod {pod}"))(e)),
        }
    }

    /// The StatefulSet shrunk below `member` and its claim deleted (its data).
    async fn remove(&self, member: Member) -> Result<(), ClusterError> {
        let name = self.set_name(member.role);
        if let Some(set) = self.sets().get_opt(&name).await.map_err(api(&name))? {
            let replicas = set.spec.and_then(|s| s.replicas).unwrap_or(0).max(0) as u32;
            if replicas > member.index {
                self.replicas(member.role, member.index).await?;
            }
        }
        let claim = format!("data-{}", self.pod_name(member));
        let claims: Api<PersistentVolumeClaim> =
            Api::namespaced(self.client.clone(), &self.namespace);
        match claims.delete(&claim, &DeleteParams::default()).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
            Err(e) => Err(api(format!("delete claim {claim}"))(e)),
        }
    }
}
