//! A private MariaDB server for the DBStore import test, from Debian's
//! `mariadb-server` package, started without Docker the way the harness
//! starts LocalStack: once per test binary, detached, output to a log file,
//! reused when one already answers at the port (the tests connect over TCP
//! on loopback). When the package is missing, the harness installs it with
//! `apt-get` (as root, or through `sudo -n`) and says so on stderr.
//!
//! It lives in `.mariadb/` at the repository root (git-ignored): data,
//! socket, pid file and log; it listens on 127.0.0.1 at [`port`] and has no
//! grant tables (any user, no password): a throwaway server on loopback.
//! `.ci/run` stops it when its run started it. When it cannot be installed
//! or started, the test that needs it fails with the reason and the
//! server's log: it never skips.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The port: `ZTS_TEST_MARIADB_PORT`, default 33306 (away from a system
/// server's 3306).
pub fn port() -> u16 {
    std::env::var("ZTS_TEST_MARIADB_PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(33306)
}

/// Where the server keeps everything.
fn home() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(".mariadb")
}

fn socket() -> PathBuf {
    home().join("mariadb.sock")
}

/// How the client programs reach the server: TCP on loopback at [`port`],
/// as the import does, so that a server already answering there (another
/// checkout's, started the same way) is reused rather than colliding with a
/// second one on the port.
fn client_args() -> [String; 4] {
    [
        "--protocol=TCP".into(),
        "--host=127.0.0.1".into(),
        format!("--port={}", port()),
        "--user=root".into(),
    ]
}

/// Ensures the server answers; returns a `mysql://` URL of `database`
/// (created if missing). Panics with the reason and the server's log if it
/// cannot start.
pub fn url(database: &str) -> String {
    static STARTED: OnceLock<Result<(), String>> = OnceLock::new();
    if let Err(report) = STARTED.get_or_init(start) {
        panic!("MariaDB is required by this test and could not be started:\n{report}");
    }
    sql(&format!("CREATE DATABASE IF NOT EXISTS `{database}`"));
    format!("mysql://root@127.0.0.1:{}/{database}", port())
}

/// Runs `statements` with the `mariadb` client; panics with its output
/// when they fail.
pub fn sql(statements: &str) {
    let output = Command::new(binary("mariadb").unwrap_or_else(|e| panic!("{e}")))
        .arg("--no-defaults")
        .args(client_args())
        .args(["--batch", "-e", statements])
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run the mariadb client: {e}"));
    assert!(
        output.status.success(),
        "mariadb client failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A program of the MariaDB packages, found on PATH or in /usr/sbin.
fn binary(name: &str) -> Result<PathBuf, String> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/bin")])
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
        .ok_or_else(|| {
            format!(
                "`{name}` not found: install Debian's mariadb-server and mariadb-client \
                 (apt-get install -y mariadb-server mariadb-client)"
            )
        })
}

/// The Debian packages the server and its client programs come from.
const PACKAGES: [&str; 2] = ["mariadb-server", "mariadb-client"];

/// Installs [`PACKAGES`] with `apt-get` unless every program the harness
/// runs is there already, saying what it does on stderr (past the test's
/// output capture). Needs root or password-less sudo; apt-get waits for a
/// dpkg lock another install holds.
fn install_if_missing() -> Result<(), String> {
    let programs = ["mariadbd", "mariadb-install-db", "mariadb", "mariadb-admin"];
    if programs.iter().all(|p| binary(p).is_ok()) {
        return Ok(());
    }
    let root = is_root();
    if !root
        && !Command::new("sudo")
            .args(["-n", "true"])
            .status()
            .is_ok_and(|s| s.success())
    {
        return Err(format!(
            "MariaDB is not installed, and installing it needs root or password-less sudo: \
             apt-get install -y {}",
            PACKAGES.join(" ")
        ));
    }
    crate::common::say([format!(
        "tests/cli: MariaDB is not installed; installing Debian's {} with apt-get \
         (once per machine)",
        PACKAGES.join(" and ")
    )
    .as_str()]);
    let apt = |args: &[&str]| -> Result<(), String> {
        let mut command = if root {
            Command::new("apt-get")
        } else {
            let mut sudo = Command::new("sudo");
            sudo.args(["-n", "apt-get"]);
            sudo
        };
        let output = command
            .args(["-q", "-o", "DPkg::Lock::Timeout=600"])
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run apt-get: {e}"))?;
        if output.status.success() {
            Ok(())
        } else {
            Err(format!(
                "apt-get {} failed:\n{}{}",
                args.join(" "),
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ))
        }
    };
    apt(&["update"])?;
    let mut install = vec!["install", "-y", "--no-install-recommends"];
    install.extend(PACKAGES);
    apt(&install)?;
    match programs.iter().find(|p| binary(p).is_err()) {
        Some(missing) => Err(format!(
            "`{missing}` is still missing after apt-get install"
        )),
        None => {
            crate::common::say(["tests/cli: installed MariaDB"]);
            Ok(())
        }
    }
}

/// Whether a server answers at the port.
fn answers() -> bool {
    let Ok(admin) = binary("mariadb-admin") else {
        return false;
    };
    Command::new(admin)
        .arg("--no-defaults")
        .args(client_args())
        .args(["--connect-timeout=2", "ping"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn start() -> Result<(), String> {
    install_if_missing()?;
    if answers() {
        return Ok(());
    }
    let home = home();
    let data = home.join("data");
    let log_path = home.join("mariadb.log");
    fs::create_dir_all(&home).map_err(|e| format!("cannot create {}: {e}", home.display()))?;
    let user: Vec<String> = if is_root() {
        vec!["--user=root".into()]
    } else {
        Vec::new()
    };
    if !data.join("mysql").is_dir() {
        let output = Command::new(binary("mariadb-install-db")?)
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .args(&user)
            .args(["--auth-root-authentication-method=normal", "--skip-test-db"])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run mariadb-install-db: {e}"))?;
        if !output.status.success() {
            return Err(format!(
                "mariadb-install-db failed:\n{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ));
        }
    }
    let log = fs::File::create(&log_path)
        .map_err(|e| format!("cannot create {}: {e}", log_path.display()))?;
    let log_err = log.try_clone().map_err(|e| e.to_string())?;
    // Detached: its own session, no stdin, output to the log; the test
    // process does not wait for it, and it keeps no pipe of the test's open.
    let mut command = Command::new("setsid");
    command
        .arg(binary("mariadbd")?)
        .arg("--no-defaults")
        .arg(format!("--datadir={}", data.display()))
        .arg(format!("--socket={}", socket().display()))
        .arg(format!(
            "--pid-file={}",
            home.join("mariadbd.pid").display()
        ))
        .arg(format!("--port={}", port()))
        .args(&user)
        .args([
            "--bind-address=127.0.0.1",
            "--skip-grant-tables",
            "--skip-name-resolve",
            "--innodb-buffer-pool-size=32M",
        ])
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err);
    command
        .spawn()
        .map_err(|e| format!("cannot start mariadbd: {e}"))?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if answers() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    Err(format!(
        "mariadbd did not answer within 60 s; its log ({}):\n{}",
        log_path.display(),
        fs::read_to_string(&log_path).unwrap_or_default()
    ))
}
