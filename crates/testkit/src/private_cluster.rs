//! A PostgreSQL cluster of the tests' own, for machines where none is reachable: created under
//! the temporary directory on first use and left running for the next test run (a later run
//! finds it by its port file). PostgreSQL's binaries come from Debian's `postgresql` package,
//! installed here when missing and the tests run as root.

use std::io::Write as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

const FIRST_PORT: u16 = 55_432;

/// Starts the cluster unless it runs already; returns its URL, or why there is none.
pub fn start() -> Result<String, String> {
    let dir = std::env::temp_dir().join("quanyu-test-postgres");
    std::fs::create_dir_all(&dir).map_err(|error| format!("cannot create {}: {error}", dir.display()))?;
    let _lock = Lock::take(&dir.join("lock"))?;
    let bin = binaries().or_else(|_| install().and_then(|()| binaries()))?;
    let as_postgres = as_postgres(&dir)?;
    let data = dir.join("data");
    if !data.join("PG_VERSION").exists() {
        announce(&format!(
            "initialising a private PostgreSQL cluster in {}",
            data.display()
        ));
        run(as_postgres
            .command(&bin.join("initdb"))
            .arg("-D")
            .arg(&data)
            .args(["-A", "trust", "-U", "postgres"]))?;
    }
    let port_file = dir.join("port");
    let port = match std::fs::read_to_string(&port_file)
        .ok()
        .and_then(|port| port.trim().parse().ok())
    {
        Some(port) => port,
        None => {
            let port = free_port()?;
            std::fs::write(&port_file, port.to_string()).map_err(|error| format!("cannot write the port: {error}"))?;
            port
        }
    };
    let running = as_postgres
        .command(&bin.join("pg_ctl"))
        .arg("status")
        .arg("-D")
        .arg(&data)
        .output()
        .is_ok_and(|status| status.status.success());
    if !running {
        announce(&format!("starting the private PostgreSQL cluster on port {port}"));
        let options = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c max_connections=300",
            dir.display()
        );
        run(as_postgres
            .command(&bin.join("pg_ctl"))
            .arg("-D")
            .arg(&data)
            .arg("-l")
            .arg(dir.join("log"))
            .args(["-w", "-o", &options, "start"]))?;
    }
    Ok(format!("postgres://postgres@127.0.0.1:{port}/postgres"))
}

/// The newest installed PostgreSQL's binaries.
fn binaries() -> Result<PathBuf, String> {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map_err(|_| "PostgreSQL is not installed".to_owned())?
        .filter_map(|entry| entry.ok().map(|entry| entry.path().join("bin")))
        .filter(|bin| bin.join("initdb").exists())
        .collect();
    found.sort_by_key(|bin| {
        let version = bin.parent().and_then(Path::file_name).and_then(|name| name.to_str());
        version.and_then(|version| version.parse::<u32>().ok()).unwrap_or(0)
    });
    found.pop().ok_or_else(|| "PostgreSQL is not installed".to_owned())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|output| output.stdout.trim_ascii() == b"0")
}

/// Installs Debian's `postgresql` package, when the tests run as root on a machine with apt.
fn install() -> Result<(), String> {
    if !is_root() || !Path::new("/usr/bin/apt-get").exists() {
        return Err("PostgreSQL is not installed, and cannot be installed here (not root, or no apt-get)".into());
    }
    announce("installing PostgreSQL (Debian package postgresql) for the tests");
    run(Command::new("apt-get").arg("update").arg("-qq"))?;
    run(Command::new("apt-get")
        .args(["install", "-y", "-qq", "postgresql"])
        .env("DEBIAN_FRONTEND", "noninteractive"))
}

/// How to run PostgreSQL's tools: as the `postgres` user when root (initdb refuses root).
struct AsPostgres(bool);

impl AsPostgres {
    fn command(&self, program: &Path) -> Command {
        if self.0 {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(program);
            command
        } else {
            Command::new(program)
        }
    }
}

fn as_postgres(dir: &Path) -> Result<AsPostgres, String> {
    if !is_root() {
        return Ok(AsPostgres(false));
    }
    run(Command::new("chown").args(["-R", "postgres"]).arg(dir))?;
    Ok(AsPostgres(true))
}

fn free_port() -> Result<u16, String> {
    (FIRST_PORT..FIRST_PORT + 100)
        .find(|port| TcpListener::bind(("127.0.0.1", *port)).is_ok())
        .ok_or_else(|| "no free port for a private PostgreSQL".to_owned())
}

fn run(command: &mut Command) -> Result<(), String> {
    let output = command
        .output()
        .map_err(|error| format!("cannot run {command:?}: {error}"))?;
    if output.status.success() {
        return Ok(());
    }
    Err(format!(
        "{command:?} failed: {}",
        String::from_utf8_lossy(&output.stderr).trim()
    ))
}

fn announce(what: &str) {
    // Past the test harness's capture: a test run that installs or starts a server says so.
    let _ = writeln!(std::io::stderr(), "NOTE: {what}");
}

/// A lock file held while the cluster is set up, so that test processes started together do not
/// both initialise it; one left by a process that died is taken over after ten minutes (an install may take some).
struct Lock(PathBuf);

impl Lock {
    fn take(path: &Path) -> Result<Self, String> {
        for _ in 0..6_000 {
            match std::fs::OpenOptions::new().write(true).create_new(true).open(path) {
                Ok(_) => return Ok(Self(path.to_owned())),
                Err(_) if is_stale(path) => {
                    let _ = std::fs::remove_file(path);
                }
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
        Err(format!("{} stayed locked", path.display()))
    }
}

fn is_stale(path: &Path) -> bool {
    let modified = std::fs::metadata(path).and_then(|metadata| metadata.modified());
    modified
        .ok()
        .and_then(|at| SystemTime::now().duration_since(at).ok())
        .is_some_and(|age| age > Duration::from_secs(600))
}

impl Drop for Lock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
