//! Two `latchkey serve` processes, `a` and `b`, on one fresh PostgreSQL database, with the
//! same issuer (the balancer's URL) and each its own data dir and port, behind HAProxy. The
//! command line sets up people and clients on the shared database. Everything stops and is
//! removed when the cluster is dropped; the PostgreSQL cluster at the end of the test binary.

use std::sync::Arc;
use std::time::Instant;

use tempfile::TempDir;

use crate::balancer::Balancer;
use crate::helpers::TestApp;
use crate::postgres;
use crate::process::{Served, free_port};

/// The instances' names, as the balancer and its `X-Served-By` header call them.
pub const NAMES: [&str; 2] = ["a", "b"];

/// One `latchkey serve` behind the balancer.
pub struct Instance {
    pub name: &'static str,
    pub port: u16,
    served: Served,
    _data_dir: TempDir,
}

impl Instance {
    fn start(name: &'static str, issuer: &str, database_url: &str) -> Instance {
        let data_dir = tempfile::tempdir().expect("a data dir");
        let port = free_port();
        let args = [
            "--data-dir",
            data_dir.path().to_str().expect("a UTF-8 temporary path"),
            "--database-url",
            database_url,
        ];
        Instance {
            name,
            port,
            served: Served::start_behind(&args, issuer, port, "077"),
            _data_dir: data_dir,
        }
    }

    /// The URL of `path` on this instance itself, not through the balancer (under the
    /// issuer's host name, so that a browser sends its cookies).
    pub fn url(&self, path: &str) -> String {
        format!("http://localhost:{}{path}", self.port)
    }
}

pub struct Cluster {
    /// Fields drop in order: the balancer stops first.
    pub balancer: Balancer,
    pub instances: Vec<Instance>,
    /// The balancer's URL as the issuer, and the command line on the shared database.
    pub app: Arc<TestApp>,
}

impl Cluster {
    /// Starts both instances, then the balancer in front of them.
    pub fn start() -> Cluster {
        let database_url = postgres::fresh_database();
        let port = free_port();
        let issuer = format!("http://localhost:{port}");
        let instances: Vec<Instance> = NAMES
            .iter()
            .map(|name| Instance::start(name, &issuer, &database_url))
            .collect();
        let servers: Vec<(&str, u16)> = instances.iter().map(|i| (i.name, i.port)).collect();
        let balancer = Balancer::start(port, &servers);
        let data_dir = tempfile::tempdir().expect("a data dir for the command line");
        Cluster {
            balancer,
            instances,
            app: Arc::new(TestApp::new(issuer, port, data_dir, Some(database_url))),
        }
    }

    pub fn instance(&self, name: &str) -> &Instance {
        self.instances
            .iter()
            .find(|instance| instance.name == name)
            .unwrap_or_else(|| panic!("no instance {name}"))
    }

    /// Kills instance `name` with SIGKILL and reaps it; returns when it was gone.
    pub fn kill(&mut self, name: &str) -> Instant {
        let index = self
            .instances
            .iter()
            .position(|instance| instance.name == name)
            .unwrap_or_else(|| panic!("no instance {name}"));
        self.instances.remove(index).served.kill();
        Instant::now()
    }

    /// A client for requests without cookies, which reaches the issuer's host name (and the
    /// instances under it) on 127.0.0.1.
    pub fn http(&self) -> reqwest::Client {
        self.app.client_builder().build().unwrap()
    }
}
