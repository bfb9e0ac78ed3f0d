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
