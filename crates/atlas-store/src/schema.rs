//! The SQLite schema as numbered migrations (`PRAGMA user_version` holds the applied number).
//! PostgreSQL has the same list in its dialect, numbered alike (`postgres/schema.rs`): a
//! migration added here is added there under the same number.
//! Both use plain SQL and `ON CONFLICT … DO NOTHING/UPDATE`; only the column types differ.

/// Migration `i` brings the schema from version `i` to `i + 1`.
pub const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE experiments (
    id TEXT PRIMARY KEY,
    created_at REAL NOT NULL,
    workflow TEXT NOT NULL,
    labels TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE runs (
    id TEXT PRIMARY KEY,
    experiment_id TEXT REFERENCES experiments(id),
    workflow TEXT NOT NULL,
    target TEXT NOT NULL,
    repetition INTEGER NOT NULL DEFAULT 0,
    run_dir TEXT,
    labels TEXT NOT NULL DEFAULT '{}',
    status TEXT NOT NULL,
    cause TEXT,
    submitted_at REAL NOT NULL,
    started_at REAL,
    ended_at REAL,
    wall_seconds REAL,
    host TEXT,
    agent_version TEXT,
    source TEXT,
    gpu TEXT
);
CREATE TABLE phases (
    run_id TEXT NOT NULL REFERENCES runs(id),
    name TEXT NOT NULL,
    position INTEGER,
    status TEXT NOT NULL,
    started_at REAL,
    wall_seconds REAL,
    exit_code INTEGER,
    signal INTEGER,
    cause TEXT,
    cpu_user_seconds REAL,
    cpu_system_seconds REAL,
    max_rss_bytes INTEGER,
    PRIMARY KEY (run_id, name)
);
CREATE TABLE events (
    run_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    time REAL NOT NULL,
    mono REAL NOT NULL,
    type TEXT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (run_id, seq)
);
CREATE TABLE samples (
    run_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    time REAL NOT NULL,
    mono REAL NOT NULL,
    scope TEXT NOT NULL,
    phase TEXT,
    cpu_user_seconds REAL,
    cpu_system_seconds REAL,
    rss_bytes INTEGER,
    read_bytes INTEGER,
    write_bytes INTEGER,
    threads INTEGER,
    processes INTEGER,
    cgroup_memory_bytes INTEGER,
    gpus TEXT,
    load1 REAL,
    memory_available_bytes INTEGER,
    cpu_busy_fraction REAL,
    PRIMARY KEY (run_id, seq)
);
CREATE TABLE metrics (
    run_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    time REAL NOT NULL,
    mono REAL NOT NULL,
    phase TEXT NOT NULL,
    name TEXT NOT NULL,
    value REAL NOT NULL,
    PRIMARY KEY (run_id, seq)
);
CREATE INDEX samples_by_phase ON samples (run_id, phase);
CREATE INDEX metrics_by_name ON metrics (run_id, phase, name);
"#,
    r#"
ALTER TABLE runs ADD COLUMN agent_cpu_seconds REAL;
"#,
    r#"
ALTER TABLE runs ADD COLUMN scheduler_id TEXT;
ALTER TABLE runs ADD COLUMN figures TEXT NOT NULL DEFAULT '{}';
ALTER TABLE experiments ADD COLUMN differences TEXT NOT NULL DEFAULT '[]';
"#,
    // Per-phase summaries of the job's samples, kept up to date at ingest, so that reading a
    // run does not scan its samples (a million per phase is a 3-hour job at 10 ms).
    r#"
ALTER TABLE phases ADD COLUMN job_samples INTEGER NOT NULL DEFAULT 0;
ALTER TABLE phases ADD COLUMN job_peak_rss INTEGER;
ALTER TABLE phases ADD COLUMN job_read_min INTEGER;
ALTER TABLE phases ADD COLUMN job_read_max INTEGER;
ALTER TABLE phases ADD COLUMN job_write_min INTEGER;
ALTER TABLE phases ADD COLUMN job_write_max INTEGER;
ALTER TABLE phases ADD COLUMN job_gpu_samples INTEGER NOT NULL DEFAULT 0;
ALTER TABLE phases ADD COLUMN job_max_processes INTEGER;
ALTER TABLE phases ADD COLUMN job_max_processes_at REAL;
ALTER TABLE runs ADD COLUMN node TEXT;
UPDATE phases SET (job_samples, job_peak_rss, job_read_min, job_read_max, job_write_min, job_write_max, job_gpu_samples) =
    (SELECT count(*), max(rss_bytes), min(read_bytes), max(read_bytes), min(write_bytes), max(write_bytes), count(gpus)
     FROM samples s WHERE s.run_id = phases.run_id AND s.phase = phases.name AND s.scope = 'job');
UPDATE phases SET (job_max_processes, job_max_processes_at) =
    (SELECT processes, time FROM samples s WHERE s.run_id = phases.run_id AND s.phase = phases.name AND s.scope = 'job'
     ORDER BY processes DESC, seq LIMIT 1);
"#,
    // 5: users with hashed API tokens, and each run's owner (a user sees their own runs).
    r#"
CREATE TABLE users (
    name TEXT PRIMARY KEY,
    token_hash TEXT NOT NULL UNIQUE,
    created_at REAL NOT NULL
);
ALTER TABLE runs ADD COLUMN owner TEXT;
CREATE INDEX runs_owner ON runs(owner, submitted_at);
"#,
    // 6: browser sessions of `atlas serve`: the SHA-256 of an opaque random session id (never
    // the API token), its user and when it expires; in the store so that servers share them.
    r#"
CREATE TABLE sessions (
    id_hash TEXT PRIMARY KEY,
    user_name TEXT NOT NULL,
    created_at REAL NOT NULL,
    expires_at REAL NOT NULL
);
CREATE INDEX sessions_expiry ON sessions(expires_at);
"#,
    // 7: what each run was started with, so a report made elsewhere (or after the run
    // directory was cleaned) still knows the cores, GPUs and inputs: the workflow as YAML and
    // the checked inputs as JSON.
    r#"
ALTER TABLE runs ADD COLUMN spec TEXT;
ALTER TABLE runs ADD COLUMN inputs TEXT;
"#,
    // 8: node samples pushed by node agents (`atlas node-agent --server`), the user who pushed
    // them (node views belong to them), one row per node and time; jobs as JSON.
    r#"
CREATE TABLE node_samples (
    owner TEXT NOT NULL,
    target TEXT NOT NULL,
    node TEXT NOT NULL,
    time REAL NOT NULL,
    cores REAL NOT NULL,
    capacity REAL,
    rss_bytes INTEGER,
    processes INTEGER,
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
    created_at REAL NOT NULL,
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
ALTER TABLE runs ADD COLUMN cores REAL NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN gpus REAL NOT NULL DEFAULT 0;
CREATE INDEX runs_tenant ON runs(tenant, submitted_at);
"#,
    // 12: API tokens scoped to one tenant and one role (`atlas token add`; only their SHA-256
    // is kept), node samples pushed with one (the tenant's nodes; one row per owner, tenant,
    // node and time: the table is made again without its old key), and each run's directory
    // size as its agent measured it at the end (the storage quota).
    r#"
CREATE TABLE api_tokens (
    id TEXT PRIMARY KEY,
    token_hash TEXT NOT NULL UNIQUE,
    user_name TEXT NOT NULL REFERENCES users(name),
    tenant TEXT NOT NULL REFERENCES tenants(name),
    role TEXT NOT NULL,
    label TEXT,
    created_at REAL NOT NULL
);
CREATE TABLE node_samples_12 (
    owner TEXT NOT NULL,
    tenant TEXT,
    target TEXT NOT NULL,
    node TEXT NOT NULL,
    time REAL NOT NULL,
    cores REAL NOT NULL,
    capacity REAL,
    rss_bytes INTEGER,
    processes INTEGER,
    jobs TEXT NOT NULL DEFAULT '{}'
);
INSERT INTO node_samples_12 (owner, target, node, time, cores, capacity, rss_bytes, processes, jobs)
    SELECT owner, target, node, time, cores, capacity, rss_bytes, processes, jobs FROM node_samples;
DROP TABLE node_samples;
ALTER TABLE node_samples_12 RENAME TO node_samples;
CREATE UNIQUE INDEX node_samples_key ON node_samples(owner, COALESCE(tenant, ''), target, node, time);
CREATE INDEX node_samples_by_time ON node_samples(owner, time);
ALTER TABLE runs ADD COLUMN storage_bytes REAL;
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
    time REAL NOT NULL,
    spec TEXT NOT NULL,
    status TEXT NOT NULL
);
CREATE UNIQUE INDEX services_key ON services(owner, COALESCE(tenant, ''), place, name);
ALTER TABLE runs ADD COLUMN storage TEXT NOT NULL DEFAULT '[]';
"#,
];
