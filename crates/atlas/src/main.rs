//! `atlas`: the command line. Each subcommand lives in `commands/`; this file parses the
//! arguments, runs the command, and turns errors into messages and exit codes
//! (0 ok, 1 the job failed, 2 usage or input error, 3 environment error).

mod commands;
mod exit;

use clap::{CommandFactory, Parser, Subcommand};

/// Move batch workflows from bare-metal clusters to cloud-native form, and measure the move.
#[derive(Parser)]
#[command(name = "atlas", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Convert an LSF, Slurm or PBS job script into a Workflow (atlas.yaml).
    Import(commands::import::Args),
    /// Print the JSON Schema of the Workflow format, for editors and validators.
    Schema,
    /// Check a Workflow file and report what is wrong with it, with file:line:column.
    Validate(commands::validate::Args),
    /// Write a container build context (Containerfile, entrypoint, Apptainer .def) for a workflow.
    Containerize(commands::containerize::Args),
    /// Emit Kubernetes/OpenShift objects for a workflow: `atlas emit k8s job.lsf`.
    Emit(commands::emit::Args),
    /// Compare an experiment's runs (or the runs named) across targets: performance,
    /// elasticity, data access, scalability and cost, with statistics and a verdict.
    Compare(commands::compare::Args),
    /// Run a workflow (or a job script) and watch it: `atlas run job.lsf --on local`.
    Run(commands::run::Args),
    /// List the experiments (groups of runs from one `atlas run`).
    Experiments(commands::experiments::Args),
    /// List the runs in the store.
    Runs(commands::runs::Args),
    /// Show one run (phases, durations, CPU, memory, IO, metrics, cause) or experiment (`e-…`).
    Show(commands::show::Args),
    /// Print a run's phase output.
    Logs(commands::logs::Args),
    /// What differs between two runs: commands, parameters, labels, resources, inputs, host.
    Diff(commands::diff::Args),
    /// The storage-service operator (MooseFS): its CustomResourceDefinition, spec checks.
    Operator(commands::operator::Args),
    /// List the targets (atlas.toml, ~/.config/atlas/targets.toml); `check` tests them.
    Targets(commands::targets::Args),
    /// The nodes of the Slurm and Kubernetes targets: state, allocation, use and class.
    Nodes(commands::nodes::Args),
    /// Backfill: where a workflow or pending job could start now without delaying a reservation.
    Backfill(commands::backfill::Args),
    /// After-hours windows by hand: freeze a target's runs (checkpoint, stop) or wake them.
    Windows(commands::windows::Args),
    /// Load agent spools into the store (safe to repeat).
    Ingest(commands::ingest::Args),
    /// Serve the REST API, Prometheus metrics and the live dashboard: `atlas serve`.
    Serve(commands::serve::Args),
    /// Add users (each gets an API token) or list them.
    User(commands::user::Args),
    /// Tenants (teams): add them, their members' roles and their quotas; list them.
    Tenant(commands::tenant::Args),
    /// API tokens scoped to one tenant and one role: add (shown once), list, revoke.
    Token(commands::token::Args),
    /// Print a shell completion script: `atlas completions bash > /etc/bash_completion.d/atlas`.
    Completions(commands::completions::Args),
    /// The in-job agent that backends start (runs phases, samples, writes the spool).
    #[command(hide = true)]
    Agent(commands::agent::Args),
    /// The node agent: samples this host's processes, serves /metrics and /usage (one per host).
    NodeAgent(commands::node_agent::Args),
    /// The sampler of one host of a multi-node job (the Slurm targets start one per node).
    #[command(hide = true)]
    AgentHost(commands::agent_host::Args),
}

fn main() {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            let code = if err.use_stderr() { 2 } else { 0 };
            let _ = err.print();
            std::process::exit(code);
        }
    };
    let result = match cli.command {
        Command::Import(args) => commands::import::run(args),
        Command::Schema => commands::schema::run(),
        Command::Validate(args) => commands::validate::run(args),
        Command::Run(args) => commands::run::run(args),
        Command::Containerize(args) => commands::containerize::run(args),
        Command::Compare(args) => commands::compare::run(args),
        Command::Emit(args) => commands::emit::run(args),
        Command::Runs(args) => commands::runs::run(args),
        Command::Experiments(args) => commands::experiments::run(args),
        Command::Show(args) => commands::show::run(args),
        Command::Logs(args) => commands::logs::run(args),
        Command::Diff(args) => commands::diff::run(args),
        Command::Operator(args) => commands::operator::run(args),
        Command::Ingest(args) => commands::ingest::run(args),
        Command::Targets(args) => commands::targets::run(args),
        Command::Nodes(args) => commands::nodes::run(args),
        Command::Backfill(args) => commands::backfill::run(args),
        Command::Windows(args) => commands::windows::run(args),
        Command::Agent(args) => commands::agent::run(args),
        Command::AgentHost(args) => commands::agent_host::run(args),
        Command::NodeAgent(args) => commands::node_agent::run(args),
        Command::Serve(args) => commands::serve::run(args),
        Command::User(args) => commands::user::run(args),
        Command::Tenant(args) => commands::tenant::run(args),
        Command::Token(args) => commands::token::run(args),
        Command::Completions(args) => commands::completions::run(args, Cli::command()),
    };
    if let Err(failure) = result {
        std::process::exit(failure.report());
    }
}
