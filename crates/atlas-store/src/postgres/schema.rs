//! The PostgreSQL schema as numbered migrations, numbered as SQLite's (`crate::schema`):
//! migration `i` of either list brings that store from version `i` to `i + 1`, and both lists
//! always have the same length and meaning (a test checks the lengths), so "schema version 6"
//! means the same tables in both. The version is the one row of `atlas_schema`.
//!
//! The dialect differs only in types: `DOUBLE PRECISION` for SQLite's `REAL`, `BIGINT` for its
//! `INTEGER`; JSON stays `TEXT` as in SQLite. There are no foreign keys, as SQLite (which does
//! not enforce them here) has none in effect: both stores accept the same rows.

use postgres::Client;

use crate::StoreError;

/// Migration `i` brings the schema from version `i` to `i + 1`.
pub const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE experiments (
    id TEXT PRIMARY KEY,
    created_at DOUBLE PRECISION NOT NULL,
    workflow TEXT NOT NULL,
    labels TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE runs (
    id TEXT PRIMARY KEY,
    experiment_id TEXT,
    workflow TEXT NOT NULL,
    target TEXT NOT NULL,
    repetition BIGINT NOT NULL DEFAULT 0,
    run_dir TEXT,
    labels TEXT NOT NULL DEFAULT '{}',
    status TEXT NOT NULL,
    cause TEXT,
    submitted_at DOUBLE PRECISION NOT NULL,
    started_at DOUBLE PRECISION,
    ended_at DOUBLE PRECISION,
    wall_seconds DOUBLE PRECISION,
    host TEXT,
    agent_version TEXT,
    source TEXT,
    gpu TEXT
);
CREATE TABLE phases (
    run_id TEXT NOT NULL,
    name TEXT NOT NULL,
    position BIGINT,
    status TEXT NOT NULL,
    started_at DOUBLE PRECISION,
    wall_seconds DOUBLE PRECISION,
    exit_code BIGINT,
    signal BIGINT,
    cause TEXT,
    cpu_user_seconds DOUBLE PRECISION,
    cpu_system_seconds DOUBLE PRECISION,
    max_rss_bytes BIGINT,
    PRIMARY KEY (run_id, name)
);
CREATE TABLE events (
    run_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    time DOUBLE PRECISION NOT NULL,
    mono DOUBLE PRECISION NOT NULL,
    type TEXT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (run_id, seq)
);
CREATE TABLE samples (
    run_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    time DOUBLE PRECISION NOT NULL,
    mono DOUBLE PRECISION NOT NULL,
    scope TEXT NOT NULL,
    phase TEXT,
    cpu_user_seconds DOUBLE PRECISION,
    cpu_system_seconds DOUBLE PRECISION,
    rss_bytes BIGINT,
    read_bytes BIGINT,
    write_bytes BIGINT,
    threads BIGINT,
    processes BIGINT,
    cgroup_memory_bytes BIGINT,
    gpus TEXT,
    load1 DOUBLE PRECISION,
    memory_available_bytes BIGINT,
    cpu_busy_fraction DOUBLE PRECISION,
    PRIMARY KEY (run_id, seq)
);
CREATE TABLE metrics (
    run_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    time DOUBLE PRECISION NOT NULL,
    mono DOUBLE PRECISION NOT NULL,
    phase TEXT NOT NULL,
    name TEXT NOT NULL,
    value DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (run_id, seq)
);
CREATE INDEX samples_by_phase ON samples (run_id, phase);
CREATE INDEX metrics_by_name ON metrics (run_id, phase, name);
"#,
    r#"
ALTER TABLE runs ADD COLUMN agent_cpu_seconds DOUBLE PRECISION;
"#,
    r#"
ALTER TABLE runs ADD COLUMN scheduler_id TEXT;
ALTER TABLE runs ADD COLUMN figures TEXT NOT NULL DEFAULT '{}';
ALTER TABLE experiments ADD COLUMN differences TEXT NOT NULL DEFAULT '[]';
"#,
    // 4: per-phase summaries of the job's samples, kept up to date at ingest.
    r#"
ALTER TABLE phases ADD COLUMN job_samples BIGINT NOT NULL DEFAULT 0;
ALTER TABLE phases ADD COLUMN job_peak_rss BIGINT;
ALTER TABLE phases ADD COLUMN job_read_min BIGINT;
ALTER TABLE phases ADD COLUMN job_read_max BIGINT;
ALTER TABLE phases ADD COLUMN job_write_min BIGINT;
ALTER TABLE phases ADD COLUMN job_write_max BIGINT;
ALTER TABLE phases ADD COLUMN job_gpu_samples BIGINT NOT NULL DEFAULT 0;
ALTER TABLE phases ADD COLUMN job_max_processes BIGINT;
ALTER TABLE phases ADD COLUMN job_max_processes_at DOUBLE PRECISION;
ALTER TABLE runs ADD COLUMN node TEXT;
"#,
    // 5: users with hashed API tokens, and each run's owner.
    r#"
CREATE TABLE users (
    name TEXT PRIMARY KEY,
    token_hash TEXT NOT NULL UNIQUE,
    created_at DOUBLE PRECISION NOT NULL
);
ALTER TABLE runs ADD COLUMN owner TEXT;
CREATE INDEX runs_owner ON runs(owner, submitted_at);
"#,
    // 6: browser sessions of `atlas serve` (shared by every server over the database).
    r#"
CREATE TABLE sessions (
    id_hash TEXT PRIMARY KEY,
    user_name TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    expires_at DOUBLE PRECISION NOT NULL
);
CREATE INDEX sessions_expiry ON sessions(expires_at);
"#,
    // 7: the workflow (YAML) and checked inputs (JSON) each run was started with.
    r#"
ALTER TABLE runs ADD COLUMN spec TEXT;
ALTER TABLE runs ADD COLUMN inputs TEXT;
"#,
    // 8: node samples pushed by node agents, per owner.
    r#"
CREATE TABLE node_samples (
    owner TEXT NOT NULL,
    target TEXT NOT NULL,
    node TEXT NOT NULL,
    time DOUBLE PRECISION NOT NULL,
    cores DOUBLE PRECISION NOT NULL,
    capacity DOUBLE PRECISION,
    rss_bytes BIGINT,
    processes BIGINT,
    jobs TEXT NOT NULL DEFAULT '{}',
    PRIMARY KEY (owner, target, node, time)
);
CREATE INDEX node_samples_by_time ON node_samples(owner, time);
"#,
    // 9: each run's freezes and wakes (after-hours windows), rebuilt from its records.
    r#"
ALTER TABLE runs ADD COLUMN windows TEXT NOT NULL DEFAULT '[]';
"#,
    // 10: what each phase read and wrote through system calls (JSON: readChars, writeChars,
    // readCalls, writeCalls), from its phaseEnd.
    r#"
ALTER TABLE phases ADD COLUMN io TEXT;
"#,
    // 11: tenants (teams) with their quotas (JSON), members with a role, each run's tenant
    // (NULL: the owner's alone) and the cores and GPUs it asked for (quotas in hours), and the
    // single sign-on identity (issuer and `sub`) a user was made for.
    r#"
CREATE TABLE tenants (
    name TEXT PRIMARY KEY,
    created_at DOUBLE PRECISION NOT NULL,
    quotas TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE tenant_members (
    tenant TEXT NOT NULL REFERENCES tenants(name),
    user_name TEXT NOT NULL,
    role TEXT NOT NULL,
    PRIMARY KEY (tenant, user_name)
);
CREATE INDEX tenant_members_by_user ON tenant_members(user_name, tenant);
ALTER TABLE users ADD COLUMN oidc_subject TEXT;
CREATE UNIQUE INDEX users_oidc_subject ON users(oidc_subject);
ALTER TABLE runs ADD COLUMN tenant TEXT;
ALTER TABLE runs ADD COLUMN cores DOUBLE PRECISION NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN gpus DOUBLE PRECISION NOT NULL DEFAULT 0;
CREATE INDEX runs_tenant ON runs(tenant, submitted_at);
CREATE INDEX runs_id_prefix ON runs(id text_pattern_ops);
CREATE INDEX experiments_id_prefix ON experiments(id text_pattern_ops);
"#,
    // 12: API tokens scoped to one tenant and one role (`atlas token add`; only their SHA-256
    // is kept), node samples pushed with one (the tenant's nodes; one row per owner, tenant,
    // node and time), and each run's directory size as its agent measured it at the end (the
    // storage quota).
    r#"
CREATE TABLE api_tokens (
    id TEXT PRIMARY KEY,
    token_hash TEXT NOT NULL UNIQUE,
    user_name TEXT NOT NULL REFERENCES users(name),
    tenant TEXT NOT NULL REFERENCES tenants(name),
    role TEXT NOT NULL,
    label TEXT,
    created_at DOUBLE PRECISION NOT NULL
);
ALTER TABLE node_samples ADD COLUMN tenant TEXT;
ALTER TABLE node_samples DROP CONSTRAINT node_samples_pkey;
CREATE UNIQUE INDEX node_samples_key ON node_samples(owner, COALESCE(tenant, ''), target, node, time);
ALTER TABLE runs ADD COLUMN storage_bytes DOUBLE PRECISION;
"#,
    // 13: the storage services' latest status as their operator pushed it (`atlas operator
    // --server`): one row per owner, tenant, place and service; spec and status as JSON. And
    // where each run's working directory and inputs lay (file system, mount; JSON).
    r#"
CREATE TABLE services (
    owner TEXT NOT NULL,
    tenant TEXT,
    place TEXT NOT NULL,
    name TEXT NOT NULL,
    time DOUBLE PRECISION NOT NULL,
    spec TEXT NOT NULL,
    status TEXT NOT NULL
);
CREATE UNIQUE INDEX services_key ON services(owner, COALESCE(tenant, ''), place, name);
ALTER TABLE runs ADD COLUMN storage TEXT NOT NULL DEFAULT '[]';
"#,
];

/// The advisory lock migrations take, so that servers starting together migrate once.
const MIGRATION_LOCK: i64 = 0x61746c61_73000001;

/// Brings the schema up to date under an advisory lock; a newer schema is refused naming both
/// versions, and a database that holds tables of something else is refused.
pub(super) fn migrate(client: &mut Client, location: &str) -> Result<(), StoreError> {
    let known = MIGRATIONS.len() as i64;
    let mut tx = client.transaction()?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?;
    let ours: bool = tx
        .query_one("SELECT to_regclass('atlas_schema') IS NOT NULL", &[])?
        .get(0);
    let version: i64 = if ours {
        tx.query_opt("SELECT version FROM atlas_schema", &[])?
            .map_or(0, |r| r.get(0))
    } else {
        let tables: i64 = tx
            .query_one(
                "SELECT count(*) FROM information_schema.tables WHERE table_schema = current_schema()",
                &[],
            )?
            .get(0);
        if tables > 0 {
            return Err(StoreError::NotADatabase {
                path: location.into(),
                reason: "it holds tables Atlas did not make".into(),
            });
        }
        tx.batch_execute("CREATE TABLE atlas_schema (version BIGINT NOT NULL)")?;
        tx.execute("INSERT INTO atlas_schema (version) VALUES (0)", &[])?;
        0
    };
    if version > known {
        return Err(StoreError::TooNew {
            path: location.into(),
            found: version,
            known,
        });
    }
    if version == known {
        return Ok(());
    }
    for sql in MIGRATIONS.iter().skip(version as usize) {
        tx.batch_execute(sql)?;
    }
    tx.execute("UPDATE atlas_schema SET version = $1", &[&known])?;
    tx.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn both_stores_have_the_same_migration_numbers() {
        assert_eq!(super::MIGRATIONS.len(), crate::schema::MIGRATIONS.len());
    }
}
