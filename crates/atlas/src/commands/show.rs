//! `atlas show RUN|EXPERIMENT`: a run and its phases (status, duration, CPU, memory, IO, app
//! metrics, cause), or an experiment and its runs.

use atlas_store::RunDetail;

use super::db::StoreView;
use super::format;
use crate::exit::Failure;

#[derive(clap::Args)]
#[command(after_help = "Examples:\n  atlas show r-3f9a\n  atlas show e-3f9a --format json")]
pub struct Args {
    /// Run id, or experiment id (`e-…`); a unique prefix is enough.
    run: String,
    #[command(flatten)]
    view: StoreView,
}

pub fn run(args: Args) -> Result<(), Failure> {
    let store = args.view.open()?;
    let not_found = |e: atlas_store::StoreError| match e {
        atlas_store::StoreError::NoSuchRun(_)
        | atlas_store::StoreError::AmbiguousRun(_)
        | atlas_store::StoreError::AmbiguousExperiment(_)
        | atlas_store::StoreError::NoSuchExperiment(_) => Failure::input(e),
        other => Failure::environment(other),
    };
    let text = if args.run.starts_with("e-") {
        let detail = store.experiment(&args.run).map_err(not_found)?;
        args.view.render(&detail, super::experiments::table)?
    } else {
        let detail = store.run(&args.run).map_err(not_found)?;
        let workflow = store
            .run_spec(&detail.run.id)
            .ok()
            .and_then(|s| s.workflow)
            .and_then(|t| atlas_spec::parse_workflow("workflow.yaml", &t).ok());
        let efficiency = workflow.as_ref().and_then(|w| priced(&detail, w));
        let shown = Shown { detail, efficiency };
        args.view.render(&shown, |s| {
            let mut text = table(&s.detail);
            text += &s
                .efficiency
                .as_ref()
                .map(efficiency_text)
                .unwrap_or_default();
            text += &hosts_line(&s.detail);
            text
        })?
    };
    super::write_output(None, &text)
}

/// The hosts of a multi-node job, each with its share (from its sampler): empty for one host.
fn hosts_line(d: &RunDetail) -> String {
    if d.hosts.is_empty() {
        return String::new();
    }
    let hosts: Vec<String> = d
        .hosts
        .iter()
        .map(|h| {
            format!(
                "{} ({} samples, CPU {:.1}s, peak {}, {} processes)",
                h.host,
                h.samples,
                h.cpu_seconds.unwrap_or(0.0),
                super::format::bytes(h.peak_rss_bytes.unwrap_or(0)),
                h.peak_processes.unwrap_or(0)
            )
        })
        .collect();
    format!("hosts: {}\n", hosts.join(", "))
}

/// A run as `atlas show` gives it: the store's detail and, once it has ended, its efficiency.
#[derive(serde::Serialize)]
struct Shown {
    #[serde(flatten)]
    detail: RunDetail,
    #[serde(skip_serializing_if = "Option::is_none")]
    efficiency: Option<Priced>,
}

/// A run's efficiency with the price it was valued at (`price` names the sheet's entry).
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Priced {
    #[serde(flatten)]
    figures: atlas_report::efficiency::Efficiency,
    price: Option<String>,
    currency: String,
}

/// What the run used of what it asked for, at the price its target names in atlas.toml.
fn priced(d: &RunDetail, workflow: &atlas_spec::Workflow) -> Option<Priced> {
    let request = atlas_report::figures::Request::of(Some(workflow));
    let (sheet, price) = target_price(&d.run.target);
    let figures = atlas_report::efficiency::of(
        d,
        request,
        price.as_ref().and_then(|n| sheet.entries.get(n)),
    )?;
    Some(Priced {
        figures,
        price,
        currency: sheet.currency,
    })
}

/// What the run used of what it asked for, as Slurm's `seff` says it: CPU time against the
/// cores allocated for the wall time, peak memory against the request, GPU activity against
/// the GPUs requested, what went unused (core-, GiB- and GPU-hours and, at the target's price,
/// money), then the same per phase.
fn efficiency_text(p: &Priced) -> String {
    let e = &p.figures;
    let run = &e.run;
    let mut parts = vec![format!(
        "CPU {:.0} % of {} core(s) for {}",
        run.cpu_share * 100.0,
        e.cores,
        format::seconds(run.wall_seconds)
    )];
    parts.push(memory_part(run, e.memory_bytes));
    if e.gpus > 0.0 {
        parts.push(match run.gpu_activity {
            Some(a) => format!(
                "GPU SM activity {:.0} % on {} GPU(s) requested",
                a * 100.0,
                e.gpus
            ),
            None => format!("{} GPU(s) requested, none seen in use", e.gpus),
        });
    }
    let mut unused = vec![format!(
        "{} core-hours",
        atlas_report::render::significant(run.unused_core_hours)
    )];
    if let Some(h) = run.unused_gib_hours {
        unused.push(format!(
            "{} GiB-hours",
            atlas_report::render::significant(h)
        ));
    }
    if let Some(h) = run.unused_gpu_hours {
        unused.push(format!(
            "{} GPU-hours",
            atlas_report::render::significant(h)
        ));
    }
    let money = match (e.wasted_cost, &p.price) {
        (Some(cost), Some(name)) => format!(
            ", {} {} at {name}'s rates",
            atlas_report::render::significant(cost),
            p.currency
        ),
        _ => " (no price for this target in atlas.toml: no money figure)".into(),
    };
    let mut out = format!(
        "efficiency: {}\nunused: {}{money}\n",
        parts.join("; "),
        unused.join(", ")
    );
    for phase in &e.phases {
        out += &phase_line(phase, e.memory_bytes);
    }
    out
}

/// A phase's line under the run's efficiency.
fn phase_line(p: &atlas_report::efficiency::Use, memory_bytes: Option<f64>) -> String {
    format!(
        "  {:<14} CPU {:>4.0} %  {}  unused {} core-hours{}\n",
        p.name,
        p.cpu_share * 100.0,
        memory_part(p, memory_bytes),
        atlas_report::render::significant(p.unused_core_hours),
        p.gpu_activity
            .map(|a| format!("  GPU SM {:.0} %", a * 100.0))
            .unwrap_or_default()
    )
}

fn memory_part(u: &atlas_report::efficiency::Use, request: Option<f64>) -> String {
    let peak = format::bytes(u.peak_memory_bytes as i64);
    match (request, u.memory_share) {
        (Some(bytes), Some(share)) => format!(
            "memory peak {peak} of {} requested ({:.0} %)",
            format::bytes(bytes as i64),
            share * 100.0
        ),
        _ => format!("memory peak {peak} (no request)"),
    }
}

/// The price sheet, and the entry the run's target names in atlas.toml (none when there is
/// no atlas.toml here, or it names no price).
fn target_price(target: &str) -> (atlas_report::prices::PriceSheet, Option<String>) {
    let sheet = atlas_report::prices::PriceSheet::load(None).unwrap_or_else(|_| {
        atlas_report::prices::PriceSheet {
            date: String::new(),
            currency: "USD".into(),
            entries: Default::default(),
        }
    });
    let name = atlas_backends::target::load(&atlas_backends::target::config_files())
        .ok()
        .and_then(|targets| {
            targets
                .into_iter()
                .find(|t| t.name == target)
                .and_then(|t| t.target.price)
        });
    (sheet, name)
}

/// How the run was launched: its id with the scheduler or runtime and the launch figures.
fn launch_line(r: &atlas_store::RunRow) -> Option<String> {
    let f = &r.figures;
    let mut parts = Vec::new();
    if let Some(id) = &r.scheduler_id {
        parts.push(if f.contains_key("imageCached") {
            format!("container {id}")
        } else if let Some(pid) = id.strip_prefix("pid ") {
            format!("process {pid}")
        } else {
            format!("job {id}")
        });
    }
    match (f.get("imageCached"), f.get("imageBuildSeconds")) {
        (Some(c), _) if *c > 0.0 => parts.push("image cached".into()),
        (_, Some(s)) => parts.push(format!("image built in {}", format::seconds(*s))),
        _ => {}
    }
    if let (Some(queue), Some(start)) = (f.get("queueWaitSeconds"), f.get("podStartSeconds")) {
        parts.push(format!(
            "pod scheduled after {}, started {} later",
            format::seconds(*queue),
            format::seconds(*start)
        ));
    }
    if let Some(bytes) = f.get("projectBytes") {
        parts.push(format!("project copied {}", format::bytes(*bytes as i64)));
    }
    if let (Some(bytes), Some(secs)) = (f.get("inputBytes"), f.get("stageInSeconds")) {
        let copied = f.get("stageInBytes").copied().unwrap_or(0.0);
        parts.push(format!(
            "inputs {} staged in {} ({} copied)",
            format::bytes(*bytes as i64),
            format::seconds(*secs),
            format::bytes(copied as i64)
        ));
    }
    (!parts.is_empty()).then(|| format!("launch: {}\n", parts.join("  ")))
}

/// One freeze: when, in which phase, its checkpoint (or why none), and its wake.
fn window_line(n: usize, w: &atlas_store::WindowRow, over: bool) -> String {
    let checkpoint = match (w.clean, w.checkpoint_bytes) {
        (true, None) => format!(
            "between phases ({})",
            w.reason.as_deref().unwrap_or("nothing running")
        ),
        (true, Some(bytes)) => format!(
            "checkpoint {} in {}",
            format::bytes(bytes as i64),
            format::seconds(w.quiesce_seconds)
        ),
        _ => format!(
            "frozen without checkpoint ({})",
            w.reason.as_deref().unwrap_or("none landed")
        ),
    };
    let woken = match w.frozen_seconds {
        Some(frozen) => format!("woken after {}", format::seconds(frozen)),
        None if over => "ended while frozen (not woken)".into(),
        None => "still frozen".into(),
    };
    let lost = w
        .lost_seconds
        .map(|s| format!(", work lost {}", format::seconds(s)))
        .unwrap_or_default();
    format!(
        "window {n}: frozen {} UTC in {}, {checkpoint}, stopped {} after the signal{lost}, {woken}\n",
        format::time(w.frozen_at),
        w.phase,
        format::seconds(w.stop_seconds)
    )
}

/// The run as a readable table.
pub fn table(d: &RunDetail) -> String {
    let r = &d.run;
    let mut out = format!(
        "run {}  workflow {}  target {}  status {}{}\n",
        r.id,
        r.workflow,
        r.target,
        r.status,
        r.cause
            .as_ref()
            .map(|c| format!(" ({c})"))
            .unwrap_or_default()
    );
    if let Some(started) = r.started_at {
        out += &format!(
            "started {} UTC on {}  queue wait {}  wall {}  agent CPU {}  measured: {}  GPU: {}\n",
            format::time(started),
            r.host.as_deref().unwrap_or("?"),
            format::seconds((started - r.submitted_at).max(0.0)),
            r.wall_seconds
                .map(format::seconds)
                .unwrap_or_else(|| "-".into()),
            r.agent_cpu_seconds
                .map(format::seconds)
                .unwrap_or_else(|| "-".into()),
            r.source.as_deref().unwrap_or("?"),
            r.gpu.as_deref().unwrap_or("?"),
        );
    }
    if let Some(line) = launch_line(r) {
        out += &line;
    }
    if !r.storage.is_empty() {
        let places: Vec<String> = r
            .storage
            .iter()
            .map(|p| format!("{} on {} ({})", p.path, p.filesystem, p.mount))
            .collect();
        out += &format!("data: {}\n", places.join(", "));
    }
    for (i, w) in r.windows.iter().enumerate() {
        out += &window_line(i + 1, w, r.status.is_over());
    }
    // READ and WRITTEN are what the job's calls moved (its data volume, cache or not); DISK-R
    // and DISK-W what reached storage (page-cache misses, write-back).
    out += &format!(
        "\n{:<14} {:<10} {:>9} {:>9} {:>9} {:>10} {:>10} {:>10} {:>10} {:>10}  {}\n",
        "PHASE",
        "STATUS",
        "WALL",
        "CPU-USER",
        "CPU-SYS",
        "PEAK-RSS",
        "READ",
        "WRITTEN",
        "DISK-R",
        "DISK-W",
        "METRICS / CAUSE"
    );
    for p in &d.phases {
        let metrics: Vec<String> = p
            .metrics
            .iter()
            .map(|m| match m.count {
                1 => format!("{} {}", m.name, m.last),
                n => format!("{} {} (first {}, {n} values)", m.name, m.last, m.first),
            })
            .collect();
        let mut tail = metrics.join(", ");
        if let Some(g) = &p.gpu {
            let energy = g
                .energy_joules
                .map(|j| format!(", {j:.0} J"))
                .unwrap_or_default();
            let gpu = format!(
                "GPU x{} util {:.0}% (peak {}%), memory peak {} (job {}){energy}",
                g.devices,
                g.mean_utilisation_percent,
                g.peak_utilisation_percent,
                format::bytes(g.peak_memory_bytes as i64),
                format::bytes(g.peak_job_memory_bytes as i64)
            );
            tail = if tail.is_empty() {
                gpu
            } else {
                format!("{gpu}; {tail}")
            };
        }
        if let Some(cause) = &p.cause {
            tail = if tail.is_empty() {
                cause.clone()
            } else {
                format!("{cause}; {tail}")
            };
        }
        let opt_s = |v: Option<f64>| v.map(format::seconds).unwrap_or_else(|| "-".into());
        let opt_b = |v: Option<i64>| v.map(format::bytes).unwrap_or_else(|| "-".into());
        let calls = |f: fn(&atlas_spec::record::PhaseIo) -> u64| p.io.map(|io| f(&io) as i64);
        out += &format!(
            "{:<14} {:<10} {:>9} {:>9} {:>9} {:>10} {:>10} {:>10} {:>10} {:>10}  {}\n",
            p.name,
            p.status,
            opt_s(p.wall_seconds),
            opt_s(p.cpu_user_seconds),
            opt_s(p.cpu_system_seconds),
            opt_b(p.peak_job_rss_bytes.max(p.max_rss_bytes)),
            opt_b(calls(|io| io.read_chars)),
            opt_b(calls(|io| io.write_chars)),
            opt_b(p.read_bytes),
            opt_b(p.write_bytes),
            tail
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::launch_line;

    fn row(scheduler_id: Option<&str>, figures: &[(&str, f64)]) -> atlas_store::RunRow {
        atlas_store::RunRow {
            id: "r-1".into(),
            scheduler_id: scheduler_id.map(String::from),
            figures: figures.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn the_launch_line_names_what_ran_the_job_and_its_figures() {
        assert_eq!(launch_line(&row(None, &[])), None);
        assert_eq!(
            launch_line(&row(Some("pid 42"), &[])).unwrap(),
            "launch: process 42\n"
        );
        assert_eq!(
            launch_line(&row(Some("157"), &[])).unwrap(),
            "launch: job 157\n"
        );
        let kube = row(
            Some("default/atlas-r-2"),
            &[("queueWaitSeconds", 1.5), ("podStartSeconds", 0.25)],
        );
        assert_eq!(
            launch_line(&kube).unwrap(),
            "launch: job default/atlas-r-2  pod scheduled after 1.50s, started 0.25s later\n"
        );
        let podman = row(
            Some("atlas-r-1"),
            &[
                ("imageCached", 0.0),
                ("imageBuildSeconds", 3.08),
                ("inputBytes", 2048.0),
                ("stageInSeconds", 0.5),
            ],
        );
        let line = launch_line(&podman).unwrap();
        assert!(
            line.starts_with("launch: container atlas-r-1  image built in 3.08s"),
            "{line}"
        );
        assert!(
            line.contains("inputs 2 KiB staged in 0.50s (0 B copied)"),
            "{line}"
        );
    }
}
