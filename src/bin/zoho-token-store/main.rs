//! `zoho-token-store`: the operator's tool for a token store in AWS Secrets
//! Manager. It imports tokens from the Zoho SDK's stores (the FileStore CSV,
//! a SQLite `oauthtoken` table, the DBStore MySQL table), lists them without
//! their secret values, exports them back to a FileStore CSV, deletes them,
//! repairs the index and reports its size and cost.
//!
//! AWS settings come from the usual environment (`AWS_REGION`,
//! `AWS_PROFILE`, `AWS_ENDPOINT_URL`, ...). Errors are printed with their
//! causes and the exit status is 1; no output shows a client secret, refresh,
//! access or grant token.

mod connect;
mod delete;
mod export;
mod import;
mod list;
mod meter;
mod progress;
mod repair;
mod sdk_observer;
mod source;
mod stats;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use zoho_token_store::DEFAULT_PREFIX;

/// Zoho CRM OAuth tokens in AWS Secrets Manager: migrate, inspect, repair.
#[derive(Debug, Parser)]
#[command(name = "zoho-token-store", version)]
struct Cli {
    /// The store's namespace: its secrets are `{prefix}/tokens/{id}` and
    /// `{prefix}/index...`.
    #[arg(long, global = true, default_value = DEFAULT_PREFIX, value_name = "P")]
    prefix: String,

    /// Writes the Secrets Manager calls this run made (by operation) and the
    /// versions it wrote (by secret, with their times) to FILE as JSON.
    #[arg(long, global = true, value_name = "FILE")]
    api_report: Option<PathBuf>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Lists the stored tokens: id, user name, client id, API domain and
    /// when the access token expires; never a secret value.
    List {
        /// A JSON array of objects with `id`, `user_name`, `client_id`,
        /// `api_domain` and `expiry_time` (Unix ms, or null).
        #[arg(long)]
        json: bool,
    },
    /// Imports tokens from Zoho SDK FileStore CSV files or SQLite databases
    /// (detected from their content), or from a DBStore MySQL table.
    Import(import::ImportArgs),
    /// Writes every token to FILE as a Zoho Python SDK 8 FileStore CSV
    /// (mode 0600; it holds secrets).
    Export {
        /// The CSV file to write.
        file: PathBuf,
        /// Replace FILE if it exists.
        #[arg(long)]
        force: bool,
    },
    /// Deletes tokens by id, by user name, or all of them.
    Delete(DeleteArgs),
    /// Reconciles the index with the token secrets that exist.
    Repair {
        /// Report what would change, change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// The index's size, token and expired-token counts, and the monthly
    /// Secrets Manager cost estimate.
    Stats,
}

/// Which tokens `delete` removes: exactly one of ids, `--user` or `--all`.
#[derive(Debug, Args)]
#[group(skip)]
#[command(group(
    clap::ArgGroup::new("target")
        .required(true)
        .multiple(false)
        .args(["ids", "user", "all"])
))]
struct DeleteArgs {
    /// Ids of the tokens to delete (an id that is not stored is not an error).
    #[arg(value_name = "ID")]
    ids: Vec<String>,
    /// Delete the token of this user name.
    #[arg(long, value_name = "NAME")]
    user: Option<String>,
    /// Delete every token under the prefix (needs --yes).
    #[arg(long, requires = "yes")]
    all: bool,
    /// Confirms --all.
    #[arg(long)]
    yes: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            return report(&anyhow::Error::new(error).context("cannot start the runtime"));
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => report(&error),
    }
}

/// Prints `error` and its causes, one per line, and gives the failure status.
fn report(error: &anyhow::Error) -> ExitCode {
    eprintln!("error: {error}");
    for cause in error.chain().skip(1) {
        eprintln!("  caused by: {cause}");
    }
    ExitCode::FAILURE
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let meter = meter::Meter::new(match &cli.command {
        Command::Import(args) => Some(args.rate),
        _ => None,
    });
    let outcome = dispatch(cli.command, &cli.prefix, &meter).await;
    if let Some(path) = &cli.api_report {
        let written = meter.write_report(path);
        // The command's own failure is the one to report.
        if outcome.is_ok() {
            written?;
        }
    }
    outcome
}

async fn dispatch(command: Command, prefix: &str, meter: &meter::Meter) -> anyhow::Result<()> {
    let store = connect::store(prefix, meter).await?;
    match command {
        Command::List { json } => list::run(&store, json).await,
        Command::Import(args) => import::run(&store, &args).await,
        Command::Export { file, force } => export::run(&store, &file, force).await,
        Command::Delete(args) => {
            delete::run(&store, &args.ids, args.user.as_deref(), args.all).await
        }
        Command::Repair { dry_run } => repair::run(&store, dry_run).await,
        Command::Stats => stats::run(&store).await,
    }
}
