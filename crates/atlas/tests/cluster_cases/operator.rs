//! The storage-service operator's custom resource on the real API server (issue 20): the CRD
//! `atlas operator crd` prints is accepted and established, a `StorageService` is created and
//! listed by its short name with its columns, and one the schema forbids (a goal of 10) is
//! refused by the server itself.

use crate::{kubeconfig, Namespace};

const SERVICE: &str = "apiVersion: atlas.dev/v1alpha1\nkind: StorageService\nmetadata: {name: scratch}\nspec:\n  chunkServers: 3\n  goal: 2\n  storagePerChunkServer: 1Gi\n  version: 3.0.117\n  image: 127.0.0.1:5000/atlas-test/moosefs:3.0.117\n";

#[test]
fn the_storage_service_crd_is_accepted_and_its_schema_enforced_by_the_server() {
    let Some(kubeconfig) = kubeconfig() else {
        return;
    };
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_atlas"))
        .args(["operator", "crd"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let dir = std::env::temp_dir().join(format!("atlas-operator-crd-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let crd = dir.join("crd.yaml");
    std::fs::write(&crd, &out.stdout).unwrap();
    let ns = Namespace::new(&kubeconfig, "operator");
    let (ok, said) = ns.kubectl(&["apply", "-f", crd.to_str().unwrap()]);
    assert!(ok, "{said}");
    let (ok, said) = ns.kubectl(&[
        "wait",
        "--for=condition=Established",
        "crd/storageservices.atlas.dev",
        "--timeout=60s",
    ]);
    assert!(ok, "{said}");
    let good = dir.join("good.yaml");
    std::fs::write(&good, SERVICE).unwrap();
    // Right after Established the server may still be loading the new type's schema.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let (ok, said) = ns.in_ns(&["apply", "-f", good.to_str().unwrap()]);
        if ok {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{said}");
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    let (ok, said) = ns.in_ns(&["get", "mfs", "scratch"]);
    assert!(ok, "{said}");
    assert!(
        said.contains("WANTED") && said.contains("UNDER GOAL"),
        "{said}"
    );
    // Defaults from the type: one master, one metalogger.
    let (ok, said) = ns.in_ns(&[
        "get",
        "storageservice",
        "scratch",
        "-o",
        "jsonpath={.spec.masters}/{.spec.metaloggers}",
    ]);
    assert!(ok, "{said}");
    assert_eq!(said, "1/1");
    let bad = dir.join("bad.yaml");
    std::fs::write(
        &bad,
        SERVICE
            .replace("goal: 2", "goal: 10")
            .replace("scratch", "too-many"),
    )
    .unwrap();
    let (ok, said) = ns.in_ns(&["apply", "-f", bad.to_str().unwrap()]);
    assert!(!ok, "a goal of 10 was accepted: {said}");
    assert!(said.contains("spec.goal"), "{said}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `atlas operator` on the namespace, killed when dropped; its output in `log`.
struct Operator {
    child: std::process::Child,
    log: std::path::PathBuf,
    metrics: u16,
}

impl Operator {
    fn start(kubeconfig: &std::path::Path, ns: &Namespace, dir: &std::path::Path) -> Operator {
        let log = dir.join("operator.log");
        let metrics = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_atlas"))
            .args(["operator", "--namespace", &ns.name, "--start-timeout", "60"])
            .args(["--metrics", &format!("127.0.0.1:{metrics}")])
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .unwrap();
        Operator {
            child,
            log,
            metrics,
        }
    }

    fn said(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// 70 free ports from a base of this process's own (the pods use the node's network).
fn free_ports() -> u16 {
    let mut base = 20_000 + (std::process::id() % 300) as u16 * 100;
    loop {
        let free = (base..base + 70).all(|p| std::net::TcpListener::bind(("0.0.0.0", p)).is_ok());
        if free {
            return base;
        }
        base = if base > 60_000 { 20_000 } else { base + 100 };
    }
}

/// The service's status once `ok` holds (within `secs`).
fn wait_status(
    ns: &Namespace,
    operator: &Operator,
    secs: u64,
    what: &str,
    ok: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        let (got, said) = ns.in_ns(&["get", "storageservice", "scratch", "-o", "json"]);
        if got {
            let json: serde_json::Value = serde_json::from_str(&said).unwrap();
            if ok(&json["status"]) {
                return json["status"].clone();
            }
            if std::time::Instant::now() > deadline {
                panic!(
                    "{what}: not within {secs} s; status {}\n{}",
                    json["status"],
                    operator.said()
                );
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
}

fn healthy(servers: u64) -> impl Fn(&serde_json::Value) -> bool {
    move |s| {
        s["phase"] == "Healthy"
            && s["readyChunkServers"] == servers
            && s["underGoalChunks"] == 0
            && s["instances"].as_array().is_some_and(|i| {
                i.iter()
                    .all(|i| i["state"] == "Running" && i["serving"] == true)
            })
    }
}

fn pod_images(ns: &Namespace) -> String {
    let (ok, said) = ns.in_ns(&[
        "get",
        "pods",
        "-l",
        "atlas.dev/storage-service=scratch",
        "-o",
        "jsonpath={range .items[*]}{.metadata.name}={.spec.containers[0].image} {end}",
    ]);
    assert!(ok, "{said}");
    said
}

#[test]
fn the_operator_heals_scales_and_upgrades_a_storage_service_on_the_cluster() {
    let Some(kubeconfig) = kubeconfig() else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("atlas-operator-k8s-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ns = Namespace::new(&kubeconfig, "mfs");
    let operator = Operator::start(&kubeconfig, &ns, &dir);
    let image = "127.0.0.1:5000/atlas/moosefs:3.0.117";
    let port = free_ports();
    let service = |servers: u32, image: &str| {
        let file = dir.join("service.yaml");
        let yaml = SERVICE
            .replace("chunkServers: 3", &format!("chunkServers: {servers}"))
            .replace("127.0.0.1:5000/atlas-test/moosefs:3.0.117", image)
            + &format!("  port: {port}\n");
        std::fs::write(&file, yaml).unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            // The operator installs the CRD when it starts: the first apply may come before it.
            let (ok, said) = ns.in_ns(&["apply", "-f", file.to_str().unwrap()]);
            if ok {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "{said}");
            std::thread::sleep(std::time::Duration::from_millis(500));
        }
    };
    service(3, image);
    let status = wait_status(&ns, &operator, 300, "3 chunk servers", healthy(3));
    // Its Prometheus metrics name the service by namespace and name.
    let body = ureq::get(&format!("http://127.0.0.1:{}/metrics", operator.metrics))
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    let ready = format!(
        "atlas_storage_ready_chunk_servers{{service=\"{}/scratch\"}} 3",
        ns.name
    );
    assert!(body.contains(&ready), "{body}");
    let (ok, said) = ns.in_ns(&["get", "statefulsets,services,pvc,pdb", "-o", "name"]);
    assert!(ok, "{said}");
    for object in [
        "statefulset.apps/scratch-chunkserver",
        "service/scratch-master",
        "persistentvolumeclaim/data-scratch-chunkserver-2",
        "poddisruptionbudget.policy/scratch-chunkserver",
    ] {
        assert!(said.contains(object), "{object}: {said}");
    }
    // The file system, mounted on this node at the master pod's host address.
    let mount = dir.join("mnt");
    std::fs::create_dir_all(&mount).unwrap();
    let master = status["masterAddress"].as_str().unwrap().to_string();
    let (host, port) = master.split_once(':').unwrap();
    let out = std::process::Command::new("mfsmount")
        .arg(&mount)
        .args(["-H", host, "-P", port])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let _unmount = Unmount(mount.clone());
    let files: Vec<(std::path::PathBuf, Vec<u8>)> = (0..3)
        .map(|i| {
            let bytes: Vec<u8> = (0..(8 << 20) + i).map(|b| (b * 7 + i) as u8).collect();
            let path = mount.join(format!("data-{i}"));
            std::fs::write(&path, &bytes).unwrap();
            (path, bytes)
        })
        .collect();
    let same = |step: &str| {
        for (path, bytes) in &files {
            let read = std::fs::read(path).unwrap_or_else(|e| panic!("{step}: {e}"));
            assert!(read == *bytes, "{step}: {} changed", path.display());
        }
    };

    // A chunk server's pod deleted: recreated by its StatefulSet, on its claim, serving again.
    let (ok, said) = ns.in_ns(&["delete", "pod", "scratch-chunkserver-1", "--wait=false"]);
    assert!(ok, "{said}");
    std::thread::sleep(std::time::Duration::from_secs(2));
    wait_status(
        &ns,
        &operator,
        180,
        "the deleted chunk server back",
        healthy(3),
    );
    same("after a chunk server's pod was deleted");

    // Scale up to 4, then down to 3: the fourth drained, then removed with its claim.
    service(4, image);
    wait_status(&ns, &operator, 180, "4 chunk servers", healthy(4));
    service(3, image);
    wait_status(&ns, &operator, 180, "back to 3", |s| {
        healthy(3)(s) && s["instances"].as_array().is_some_and(|i| i.len() == 5)
    });
    let said = operator.said();
    let marked = said.find("mark chunkserver-3 for removal").expect(&said);
    let removed = said.find("remove chunkserver-3 and its data").expect(&said);
    assert!(marked < removed, "{said}");
    // Its claim is deleted (gone once its pod has ended: the claim-protection finalizer).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
    loop {
        let (_, claims) = ns.in_ns(&["get", "pvc", "-o", "name"]);
        if !claims.contains("data-scratch-chunkserver-3") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{claims}");
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    same("after scaling");

    // An upgrade, one pod at a time, the master last.
    let next = "127.0.0.1:5000/atlas/moosefs:3.0.117-2";
    service(3, next);
    wait_status(&ns, &operator, 300, "upgraded", |s| {
        healthy(3)(s)
            && s["instances"]
                .as_array()
                .is_some_and(|i| i.iter().all(|i| i["image"] == next))
    });
    let said = operator.said();
    let order: Vec<usize> = ["metalogger-0", "chunkserver-2", "chunkserver-0", "master"]
        .iter()
        .map(|m| said.find(&format!("replace {m} by {next}")).expect(&said))
        .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{said}");
    same("after the upgrade");

    // A version that does not start: rolled back to the last good one.
    let broken = "127.0.0.1:5000/atlas/moosefs:broken";
    service(3, broken);
    wait_status(&ns, &operator, 240, "rolled back", |s| {
        healthy(3)(s) && s["failedImage"] == broken
    });
    let images = pod_images(&ns);
    assert!(!images.contains("broken"), "{images}");
    assert!(
        images.contains(&format!("scratch-metalogger-0={next}")),
        "{images}"
    );
    same("after the rollback");
    drop(_unmount);
    drop(operator);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Unmounts the file system when dropped (a failed test leaves no mount behind).
struct Unmount(std::path::PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}
