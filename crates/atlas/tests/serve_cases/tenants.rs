//! Tenants from the command line to the API: `atlas tenant add|member add|list`, runs started
//! by two users of two tenants (`ATLAS_USER=u1 atlas run … --on local`) each reaching its own
//! tenant's tokens only, and what `atlas run` refuses before submitting anything: a quota that
//! is full, a viewer, a tenant the user is not in, a choice left open between two tenants.

use std::process::Command;

use crate::support::http::send;
use crate::support::project::Project;
use crate::support::server::{Db, Kind, Server};

crate::on_both_stores!(
    two_users_of_two_tenants_each_reach_their_tenants_run_only,
    quotas_roles_and_the_tenant_choice_refuse_before_anything_is_submitted,
    runs_started_at_the_same_moment_never_pass_the_run_quota_together,
);

const TINY: &str = "apiVersion: atlas.dev/v1alpha1\nkind: Workflow\nmetadata: {name: tiny}\nspec:\n  resources: {cpusPerTask: 2, walltime: 1h}\n  phases:\n  - {name: a, run: 'echo hi'}\n";

/// `atlas ARGS…` as `user` in the project over `db`, not started yet.
fn command_as(p: &Project, db: &Db, user: &str, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_atlas"));
    command
        .args(args)
        .current_dir(&p.dir)
        .env("ATLAS_DB", &db.location)
        .env("ATLAS_USER", user)
        .env_remove("ATLAS_TENANT")
        .env("XDG_DATA_HOME", p.dir.join("data"))
        .env("XDG_CONFIG_HOME", p.dir.join("no-user-config"));
    command
}

/// `atlas ARGS…` as `user` in the project over `db`: (exit code, stdout, stderr).
fn atlas_as(p: &Project, db: &Db, user: &str, args: &[&str]) -> (i32, String, String) {
    let out = command_as(p, db, user, args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `atlas ARGS…` by the site admin; it must succeed.
pub(crate) fn admin(p: &Project, db: &Db, args: &[&str]) -> String {
    let (code, out, err) = atlas_as(p, db, "root", args);
    assert_eq!(code, 0, "atlas {args:?}: {err}");
    out
}

/// The ids of every run in the store, newest first.
fn run_ids(p: &Project, db: &Db) -> Vec<String> {
    let out = admin(p, db, &["runs", "--format", "json"]);
    let runs: serde_json::Value = serde_json::from_str(&out).unwrap();
    runs.as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect()
}

fn get(server: &Server, path: &str, token: &str) -> crate::support::http::Reply {
    send(
        "GET",
        &format!("{}{path}", server.url),
        &[("Authorization", &format!("Bearer {token}"))],
        b"",
    )
}

fn two_users_of_two_tenants_each_reach_their_tenants_run_only(kind: Kind) {
    let p = Project::new(&format!("serve-tenant-runs-{kind:?}"), "");
    std::fs::write(p.dir.join("w.yaml"), TINY).unwrap();
    let db = Db::new(kind, &p.dir);
    let server = Server::start(&p.dir, &db);
    let (t1, t2) = (server.add_user("u1"), server.add_user("u2"));
    admin(&p, &db, &["tenant", "add", "team-a"]);
    admin(&p, &db, &["tenant", "add", "team-b"]);
    admin(
        &p,
        &db,
        &["tenant", "member", "add", "team-a", "u1", "--role", "admin"],
    );
    admin(
        &p,
        &db,
        &[
            "tenant", "member", "add", "team-b", "u2", "--role", "member",
        ],
    );
    let list: serde_json::Value =
        serde_json::from_str(&admin(&p, &db, &["tenant", "list", "--format", "json"])).unwrap();
    assert_eq!(list[0]["name"], "team-a", "{list}");
    assert_eq!(list[0]["members"][0]["user"], "u1");
    assert_eq!(list[0]["members"][0]["role"], "admin");
    assert_eq!(list[1]["members"][0]["role"], "member");
    assert_eq!(list[1]["usage"]["activeRuns"], 0);

    let mut ids = Vec::new();
    for user in ["u1", "u2"] {
        let (code, _, err) = atlas_as(&p, &db, user, &["run", "w.yaml", "--on", "local"]);
        assert_eq!(code, 0, "{err}");
        ids.push(run_ids(&p, &db)[0].clone());
    }
    let (r1, r2) = (&ids[0], &ids[1]);
    for (token, own, other, tenant) in [(&t1, r1, r2, "team-a"), (&t2, r2, r1, "team-b")] {
        let reply = get(&server, &format!("/api/v1/runs/{own}"), token);
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert_eq!(reply.json()["tenant"], tenant, "{}", reply.body);
        let reply = get(&server, &format!("/api/v1/runs/{other}"), token);
        assert_eq!(reply.status, 404, "{}", reply.body);
        let listed = get(&server, "/api/v1/runs", token).json();
        let listed: Vec<&str> = listed
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_str().unwrap())
            .collect();
        assert_eq!(listed, [own.as_str()]);
    }
    let list: serde_json::Value =
        serde_json::from_str(&admin(&p, &db, &["tenant", "list", "--format", "json"])).unwrap();
    let hours = list[0]["usage"]["coreHours"].as_f64().unwrap();
    assert!(hours > 0.0, "2 cores for the run's wall time: {list}");

    // A tenant's admin manages its members over the API; its other members may not; a
    // stranger is told nothing of it.
    let member = |token: &str, method: &str, user: &str, body: &str| {
        send(
            method,
            &format!("{}/api/v1/tenants/team-a/members/{user}", server.url),
            &[("Authorization", &format!("Bearer {token}"))],
            body.as_bytes(),
        )
    };
    let viewer = r#"{"role": "viewer"}"#;
    assert_eq!(member(&t2, "PUT", "u2", r#"{"role": "admin"}"#).status, 404);
    let reply = member(&t1, "PUT", "u2", viewer);
    assert_eq!(reply.status, 200, "{}", reply.body);
    let reply = member(&t2, "PUT", "u2", r#"{"role": "admin"}"#);
    assert_eq!(
        reply.status, 403,
        "a viewer does not promote themselves: {}",
        reply.body
    );
    assert_eq!(member(&t1, "PUT", "U2", viewer).status, 400);
    assert_eq!(member(&t1, "PUT", "u2", r#"{"role": "owner"}"#).status, 400);
    let mine = get(&server, "/api/v1/tenants", &t1).json();
    assert_eq!(mine[0]["name"], "team-a");
    assert_eq!(mine[0]["members"].as_array().unwrap().len(), 2, "{mine}");
    let theirs = get(&server, "/api/v1/tenants", &t2).json();
    assert!(
        theirs[0].get("members").is_none(),
        "members are for admins: {theirs}"
    );
    assert_eq!(
        get(&server, &format!("/api/v1/runs/{r1}"), &t2).status,
        200,
        "u2 now reads team-a"
    );
    let reply = member(&t1, "DELETE", "u2", "");
    assert_eq!(reply.json()["removed"], true, "{}", reply.body);
    assert_eq!(get(&server, &format!("/api/v1/runs/{r1}"), &t2).status, 404);
    // Only users with an account; the last admin stays.
    assert_eq!(member(&t1, "PUT", "nobody-yet", viewer).status, 404);
    assert_eq!(member(&t1, "DELETE", "u1", "").status, 409);
    assert_eq!(member(&t1, "PUT", "u1", viewer).status, 409);
    // Taken out of team-a, u1 no longer pushes records into its runs, even their own.
    admin(&p, &db, &["tenant", "member", "remove", "team-a", "u1"]);
    let record = format!("{{\"run\":\"{r1}\",\"seq\":900,\"time\":1.0,\"mono\":0.0,\"type\":\"signal\",\"signal\":15}}\n");
    let reply = send(
        "POST",
        &format!("{}/api/v1/records", server.url),
        &[("Authorization", &format!("Bearer {t1}"))],
        record.as_bytes(),
    );
    assert_eq!(reply.status, 404, "{}", reply.body);
}

fn quotas_roles_and_the_tenant_choice_refuse_before_anything_is_submitted(kind: Kind) {
    let p = Project::new(&format!("serve-tenant-quotas-{kind:?}"), "");
    std::fs::write(p.dir.join("w.yaml"), TINY).unwrap();
    let db = Db::new(kind, &p.dir);
    admin(&p, &db, &["tenant", "add", "team-a"]);
    admin(&p, &db, &["tenant", "add", "team-b"]);
    admin(&p, &db, &["tenant", "member", "add", "team-a", "u1"]);
    admin(
        &p,
        &db,
        &[
            "tenant", "member", "add", "team-a", "vic", "--role", "viewer",
        ],
    );
    let run = |user: &str, extra: &[&str]| {
        let mut args = vec!["run", "w.yaml", "--on", "local"];
        args.extend_from_slice(extra);
        atlas_as(&p, &db, user, &args)
    };
    let refused = |user: &str, extra: &[&str], why: &str| {
        let before = run_ids(&p, &db).len();
        let (code, _, err) = run(user, extra);
        assert_eq!(code, 2, "{err}");
        assert!(err.contains(why), "expected {why:?} in: {err}");
        assert_eq!(run_ids(&p, &db).len(), before, "nothing submitted: {err}");
    };
    // Runs at once: two repetitions when one is allowed.
    admin(
        &p,
        &db,
        &["tenant", "quota", "set", "team-a", "--runs", "1"],
    );
    refused("u1", &["--repeat", "2"], "quota is 1 run(s) at once");
    assert_eq!(run("u1", &[]).0, 0, "one run fits");
    // Storage: the run's directory, as its agent measured it at the end, counts; a quota
    // below it refuses the next run.
    let used = db.texts("SELECT CAST(storage_bytes AS TEXT) FROM runs WHERE tenant = 'team-a'");
    let bytes: f64 = used[0].parse().unwrap();
    assert!(bytes > 0.0, "the run directory was measured: {used:?}");
    let storage_quota = |times: f64| {
        let gib = format!("{}", bytes * times / (1u64 << 30) as f64);
        let args = [
            "tenant",
            "quota",
            "set",
            "team-a",
            "--clear",
            "--storage-gib",
            &gib,
        ];
        admin(&p, &db, &args);
    };
    storage_quota(0.5);
    refused("u1", &[], "GiB in run directories: its quota is");
    storage_quota(4.0);
    assert_eq!(run("u1", &[]).0, 0, "under the storage quota");
    // Core-hours: the walltime (1 h × 2 cores) could pass 1 core-hour.
    admin(
        &p,
        &db,
        &[
            "tenant",
            "quota",
            "set",
            "team-a",
            "--clear",
            "--core-hours",
            "1",
        ],
    );
    refused("u1", &[], "of its 1 in the last 30 days");
    admin(&p, &db, &["tenant", "quota", "set", "team-a", "--clear"]);
    // Core-hours at the size the runs will have: 2 CPUs × 1 task per node × 2 nodes × 1 h.
    let wide = "apiVersion: atlas.dev/v1alpha1\nkind: Workflow\nmetadata: {name: wide}\nspec:\n  resources: {tasksPerNode: 1, cpusPerTask: 2, walltime: 1h}\n  phases:\n  - {name: a, run: 'true'}\n";
    std::fs::write(p.dir.join("wide.yaml"), wide).unwrap();
    admin(
        &p,
        &db,
        &[
            "tenant",
            "quota",
            "set",
            "team-a",
            "--clear",
            "--core-hours",
            "3",
        ],
    );
    let (code, _, err) = atlas_as(
        &p,
        &db,
        "u1",
        &["run", "wide.yaml", "--on", "local", "--nodes", "2"],
    );
    assert_eq!(
        code, 2,
        "4 cores for an hour could pass 3 core-hours: {err}"
    );
    admin(&p, &db, &["tenant", "quota", "set", "team-a", "--clear"]);
    // A user name that is not one is refused, not recorded.
    let (code, _, err) = atlas_as(&p, &db, "Bob", &["run", "w.yaml", "--on", "local"]);
    assert_eq!(code, 2, "{err}");
    // A viewer reads and starts nothing; a stranger to the tenant cannot name it.
    refused("vic", &[], "viewer of tenant `team-a`");
    refused(
        "u1",
        &["--tenant", "team-b"],
        "not a member of tenant `team-b`",
    );
    // In two tenants, the choice is the user's to make.
    admin(&p, &db, &["tenant", "member", "add", "team-b", "u1"]);
    refused("u1", &[], "several tenants (team-a, team-b)");
    assert_eq!(run("u1", &["--tenant", "team-b"]).0, 0);
    // Bad names and roles are refused by the command line.
    let (code, _, err) = atlas_as(&p, &db, "root", &["tenant", "add", "../etc"]);
    assert_eq!(code, 2, "{err}");
    let (code, _, err) = atlas_as(
        &p,
        &db,
        "root",
        &["tenant", "member", "add", "team-a", "u9", "--role", "owner"],
    );
    assert_eq!(code, 2, "{err}");
    let (code, _, err) = atlas_as(&p, &db, "root", &["tenant", "add", "team-a"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("exists already"), "{err}");
}

/// Three `atlas run`s of one tenant at once, with one run allowed: each passes the check before
/// registering, and each registered run counts the tenant's active runs again before
/// submitting; whatever the interleaving, no two run at once (under a tie none may run).
fn runs_started_at_the_same_moment_never_pass_the_run_quota_together(kind: Kind) {
    let p = Project::new(&format!("serve-tenant-race-{kind:?}"), "");
    let slow = "apiVersion: atlas.dev/v1alpha1\nkind: Workflow\nmetadata: {name: slow}\nspec:\n  phases:\n  - {name: a, run: 'sleep 5'}\n";
    std::fs::write(p.dir.join("slow.yaml"), slow).unwrap();
    let db = Db::new(kind, &p.dir);
    admin(&p, &db, &["tenant", "add", "team-a"]);
    admin(&p, &db, &["tenant", "member", "add", "team-a", "u1"]);
    admin(
        &p,
        &db,
        &["tenant", "quota", "set", "team-a", "--runs", "1"],
    );
    let children: Vec<_> = (0..3)
        .map(|_| {
            let run = ["run", "slow.yaml", "--on", "local", "--interval", "200ms"];
            command_as(&p, &db, "u1", &run)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut child in children {
        child.wait().unwrap();
    }
    let out = admin(&p, &db, &["runs", "--format", "json"]);
    let runs: serde_json::Value = serde_json::from_str(&out).unwrap();
    let runs = runs.as_array().unwrap();
    // The runs that ran never overlapped (a command that registered after the first had ended
    // may run too, on a slow machine).
    let mut ran: Vec<(f64, f64)> = runs
        .iter()
        .filter(|r| r["status"] == "succeeded")
        .map(|r| {
            let start = r["startedAt"].as_f64().unwrap();
            (start, start + r["wallSeconds"].as_f64().unwrap())
        })
        .collect();
    ran.sort_by(|a, b| a.0.total_cmp(&b.0));
    for pair in ran.windows(2) {
        assert!(pair[1].0 >= pair[0].1, "two ran at once: {runs:?}");
    }
    for run in runs.iter().filter(|r| r["status"] != "succeeded") {
        let cause = run["cause"].as_str().unwrap_or("");
        assert!(
            cause.contains("over its quota"),
            "refused by the quota: {run}"
        );
    }
}
