//! Fresh test databases: a SQLite directory, or a PostgreSQL database created for one test and
//! dropped after it.

use std::io::Write as _;
use std::sync::Once;
use std::time::Duration;

use quanyu_runtime::db::DatabaseConfig;
use sea_orm::{ConnectOptions, ConnectionTrait, Database};

use crate::{Backend, database_config, private_cluster};

const LOCAL_POSTGRES: &str = "postgres://postgres@127.0.0.1:5432/test";
const REQUIRE: &str = "TEST_REQUIRE_POSTGRES";

pub struct TestDatabase {
    pub backend: Backend,
    url: String,
    _sqlite_dir: Option<tempfile::TempDir>,
    postgres: Option<(String, String)>,
}

impl TestDatabase {
    /// A fresh database; `None` when the backend is PostgreSQL and none is reachable.
    pub async fn create(backend: Backend) -> Option<TestDatabase> {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("a temporary directory");
                let url = format!("sqlite://{}/{{service}}.db?mode=rwc", dir.path().display());
                Some(TestDatabase {
                    backend,
                    url,
                    _sqlite_dir: Some(dir),
                    postgres: None,
                })
            }
            Backend::Postgres => {
                let server_url = server_url().await?;
                let name = format!("quanyu_test_{}", uuid::Uuid::now_v7().simple());
                execute(&server_url, &format!("CREATE DATABASE \"{name}\"")).await;
                let url = with_database(&server_url, &name);
                Some(TestDatabase {
                    backend,
                    url,
                    _sqlite_dir: None,
                    postgres: Some((server_url, name)),
                })
            }
        }
    }

    pub fn config(&self) -> DatabaseConfig {
        database_config(self.url.clone())
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let Some((server_url, name)) = self.postgres.take() else {
            return;
        };
        // Drop runs outside any async context we could borrow, so the database is dropped from a
        // runtime of its own; FORCE ends the connections pools still hold.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build();
            if let Ok(runtime) = runtime {
                runtime.block_on(execute(
                    &server_url,
                    &format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"),
                ));
            }
        });
        let _ = dropped.join();
    }
}

async fn server_url() -> Option<String> {
    if let Ok(url) = std::env::var("TEST_DATABASE_URL")
        && !url.is_empty()
    {
        return Some(url);
    }
    let local = tokio::time::timeout(Duration::from_secs(2), tokio::net::TcpStream::connect("127.0.0.1:5432")).await;
    if matches!(local, Ok(Ok(_))) {
        return Some(LOCAL_POSTGRES.to_owned());
    }
    static PRIVATE: tokio::sync::OnceCell<Result<String, String>> = tokio::sync::OnceCell::const_new();
    let private = PRIVATE
        .get_or_init(|| async {
            tokio::task::spawn_blocking(private_cluster::start)
                .await
                .unwrap_or_else(|error| Err(format!("starting it failed: {error}")))
        })
        .await;
    let why = match private {
        Ok(url) => return Some(url.clone()),
        Err(why) => why,
    };
    if std::env::var(REQUIRE).is_ok_and(|value| value == "1") {
        panic!("{REQUIRE}=1 but no PostgreSQL: none at TEST_DATABASE_URL or 127.0.0.1:5432, and no private one: {why}");
    }
    static NOTICE: Once = Once::new();
    NOTICE.call_once(|| {
        // Written past the test harness's capture, so that the skip is seen.
        let _ = writeln!(
            std::io::stderr(),
            "\nNOTE: PostgreSQL suite SKIPPED: no TEST_DATABASE_URL, nothing at 127.0.0.1:5432, and no \
             private cluster ({why}); only SQLite was tested (set {REQUIRE}=1 to make this a failure)\n"
        );
    });
    None
}

/// The `host:port` of a PostgreSQL URL, when it names an IP address and a port.
pub(crate) fn server_address(url: &str) -> Option<std::net::SocketAddr> {
    let authority = url.split_once("://")?.1.split(['/', '?']).next()?;
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, host_port)| host_port);
    host_port.parse().ok()
}

fn with_database(server_url: &str, name: &str) -> String {
    let (base, query) = match server_url.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (server_url, String::new()),
    };
    let authority_end = base.find("://").map_or(0, |i| i + 3);
    let root = match base[authority_end..].find('/') {
        Some(slash) => &base[..authority_end + slash],
        None => base,
    };
    format!("{root}/{name}{query}")
}

async fn execute(server_url: &str, statement: &str) {
    let mut options = ConnectOptions::new(server_url.to_owned());
    options.max_connections(1).sqlx_logging(false);
    let db = Database::connect(options)
        .await
        .unwrap_or_else(|error| panic!("cannot connect to PostgreSQL at {server_url}: {error}"));
    db.execute_unprepared(statement)
        .await
        .unwrap_or_else(|error| panic!("{statement}: {error}"));
    let _ = db.close().await;
}

#[cfg(test)]
mod tests {
    use super::{server_address, with_database};

    #[test]
    fn replaces_the_database_of_a_url() {
        assert_eq!(with_database("postgres://u@h:5432/test", "x"), "postgres://u@h:5432/x");
        assert_eq!(
            with_database("postgres://u@h/test?sslmode=disable", "x"),
            "postgres://u@h/x?sslmode=disable"
        );
        assert_eq!(with_database("postgres://u@h", "x"), "postgres://u@h/x");
        assert_eq!(
            server_address("postgres://u@127.0.0.1:5432/x?sslmode=disable"),
            Some(([127, 0, 0, 1], 5432).into())
        );
        assert_eq!(server_address("postgres://u@db/x"), None);
    }
}
