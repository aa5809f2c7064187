//! Support for `tests/cli.rs`: running the `zoho-token-store` binary as a
//! process against LocalStack, and a private MariaDB server for the
//! DBStore import.
#![allow(dead_code, unreachable_pub)]

pub mod mariadb;

use std::path::Path;
use std::process::{Command, Output};

/// What one run of the binary printed, and how it ended.
#[derive(Debug)]
pub struct Run {
    /// Whether it exited with status 0.
    pub success: bool,
    /// Its exit code (`None` when killed by a signal).
    pub code: Option<i32>,
    /// Its standard output.
    pub stdout: String,
    /// Its standard error.
    pub stderr: String,
}

impl Run {
    /// Panics, with the output, unless the run succeeded.
    #[track_caller]
    pub fn ok(self) -> Self {
        assert!(
            self.success,
            "the CLI failed ({:?}):\n{}",
            self.code,
            self.all()
        );
        self
    }

    /// Panics, with the output, unless the run failed with status 1.
    #[track_caller]
    pub fn failed(self) -> Self {
        assert_eq!(
            self.code,
            Some(1),
            "the CLI did not fail with status 1:\n{}",
            self.all()
        );
        self
    }

    /// Stdout and stderr together.
    pub fn all(&self) -> String {
        format!("--- stdout\n{}--- stderr\n{}", self.stdout, self.stderr)
    }
}

/// Runs the binary with `args` under `prefix`, against the tests' LocalStack.
pub fn cli(prefix: &str, args: &[&str]) -> Run {
    cli_in(prefix, args, None)
}

/// [`cli`], in the working directory `dir` when given.
pub fn cli_in(prefix: &str, args: &[&str], dir: Option<&Path>) -> Run {
    let endpoint = crate::common::localstack_blocking();
    let mut command = Command::new(env!("CARGO_BIN_EXE_zoho-token-store"));
    command
        .arg("--prefix")
        .arg(prefix)
        .args(args)
        .env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .env_remove("AWS_PROFILE");
    if let Some(dir) = dir {
        command.current_dir(dir);
    }
    let Output {
        status,
        stdout,
        stderr,
    } = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run the CLI: {e}"));
    Run {
        success: status.success(),
        code: status.code(),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}
