//! Runs the real binaries: a `backup-server` on 127.0.0.1 with its own config directory
//! and datastore in a temp dir, and `backup-client` commands pointed at it.
//!
//! Cargo gives a package only its own binaries' paths, so the harness looks for the
//! workspace's binaries next to the test executable (`target/<profile>/`); `make test`
//! builds them first.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Path of a workspace binary built in the same profile as the running test.
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current test executable");
    // target/<profile>/deps/<test> -> target/<profile>/<name>
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target profile directory");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: build the binaries first (`cargo build --bins`, which `make test` does)",
        path.display()
    );
    path
}

/// Options of a test server.
#[derive(Clone, Debug)]
pub struct ServerOptions {
    /// Average chunk size of the datastore in KiB.
    pub chunk_size_kib: usize,
    /// The datastore's GC grace (a test-only option); `None` keeps 24h5m.
    pub gc_grace_seconds: Option<i64>,
    /// Extra environment of the server process (test pause points).
    pub env: Vec<(String, String)>,
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self {
            chunk_size_kib: 4096,
            gc_grace_seconds: None,
            env: Vec::new(),
        }
    }
}

/// A running `backup-server` with one datastore named [`TestServer::STORE`].
pub struct TestServer {
    pub dir: tempfile::TempDir,
    pub config_dir: PathBuf,
    pub store_path: PathBuf,
    pub fingerprint: String,
    pub secret: String,
    pub addr: String,
    env: Vec<(String, String)>,
    child: Option<Child>,
}

impl TestServer {
    pub const STORE: &'static str = "store1";
    pub const TOKEN: &'static str = "root@local!admin";

    pub fn start() -> Self {
        Self::start_with(ServerOptions::default())
    }

    pub fn start_with(options: ServerOptions) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let config_dir = dir.path().join("config");
        let store_path = dir.path().join("store");
        let init = run_ok(
            Command::new(bin("backup-server"))
                .arg("init")
                .arg("--config-dir")
                .arg(&config_dir),
        );
        let stdout = String::from_utf8_lossy(&init.stdout);
        let fingerprint = stdout
            .lines()
            .find_map(|l| l.strip_prefix("fingerprint: "))
            .expect("init prints the fingerprint")
            .trim()
            .to_string();
        let secret = std::fs::read_to_string(config_dir.join("admin.token"))
            .expect("admin.token")
            .trim()
            .to_string();
        let mut create = Command::new(bin("backup-server"));
        create
            .args(["datastore", "create", Self::STORE])
            .arg(&store_path)
            .arg("--config-dir")
            .arg(&config_dir)
            .arg("--chunk-size-kib")
            .arg(options.chunk_size_kib.to_string());
        if let Some(grace) = options.gc_grace_seconds {
            create.arg("--gc-grace-seconds").arg(grace.to_string());
        }
        run_ok(&mut create);
        let mut server = TestServer {
            dir,
            config_dir,
            store_path,
            fingerprint,
            secret,
            addr: String::new(),
            env: options.env.clone(),
            child: None,
        };
        server.spawn("127.0.0.1:0");
        server
    }

    fn spawn(&mut self, listen: &str) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("server log");
        let mut child = Command::new(bin("backup-server"))
            .arg("serve")
            .arg("--config-dir")
            .arg(&self.config_dir)
            .arg("--listen")
            .arg(listen)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start backup-server");
        let stdout = child.stdout.take().expect("server stdout");
        let mut lines = BufReader::new(stdout).lines();
        let first = lines.next().and_then(Result::ok).unwrap_or_default();
        let addr = first
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("server did not start: {first:?}\n{}", self.log()))
            .trim()
            .to_string();
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        self.addr = addr;
        self.child = Some(child);
    }

    /// Stops the server (SIGKILL) and starts it again on the same address.
    pub fn restart(&mut self) {
        self.kill();
        let addr = self.addr.clone();
        self.spawn(&addr);
    }

    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("server.log")
    }

    /// Everything the server wrote to stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    pub fn repository(&self) -> String {
        format!("{}@{}:{}", Self::TOKEN, self.addr, Self::STORE)
    }

    /// An API client of this server, authenticated as the admin token.
    pub fn api_client(&self) -> api_client::HttpClient {
        let (host, port) = self.addr.rsplit_once(':').expect("host:port");
        let address = api_client::http::ServerAddress {
            host: host.to_string(),
            port: port.parse().expect("port"),
        };
        let fingerprint = self.fingerprint.parse().expect("fingerprint");
        api_client::HttpClient::new(
            address,
            Self::TOKEN.into(),
            self.secret.clone(),
            Some(fingerprint),
        )
        .expect("api client")
    }

    /// A `backup-client` command with repository, secret and fingerprint in its
    /// environment.
    pub fn client(&self) -> Command {
        let mut cmd = Command::new(bin("backup-client"));
        cmd.env("BACKUP_REPOSITORY", self.repository())
            .env("BACKUP_PASSWORD", &self.secret)
            .env("BACKUP_FINGERPRINT", &self.fingerprint)
            .env_remove("BACKUP_CLIENT_TEST_FAULT")
            .stdin(Stdio::null());
        cmd
    }

    /// Runs `backup-client --output-format json ARGS` and parses its summary; panics with
    /// its output unless it succeeded.
    pub fn client_json(&self, args: &[&str]) -> serde_json::Value {
        let output = run_ok(self.client().args(["--output-format", "json"]).args(args));
        serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
            panic!(
                "client printed no JSON ({e}): {}",
                String::from_utf8_lossy(&output.stdout)
            )
        })
    }

    /// Backs up `path` as `root.tar` under `backup_id` and returns the summary.
    pub fn backup(&self, path: &Path, backup_id: &str) -> serde_json::Value {
        self.backup_with(path, backup_id, &[])
    }

    /// `backup` with further client options (`--change-detection data`, ...).
    pub fn backup_with(&self, path: &Path, backup_id: &str, extra: &[&str]) -> serde_json::Value {
        let spec = format!("root.tar:{}", path.display());
        let mut args = vec!["backup", spec.as_str(), "--backup-id", backup_id];
        args.extend_from_slice(extra);
        self.client_json(&args)
    }

    /// The result of the one backup task that finished since the last call (the server's
    /// own statistics of the session); `seen` remembers the tasks already returned.
    pub fn new_backup_task(
        &self,
        seen: &mut std::collections::HashSet<String>,
    ) -> serde_json::Value {
        let tasks = self.admin_json(&["task", "list", "--type", "backup"]);
        let fresh: Vec<serde_json::Value> = tasks
            .as_array()
            .expect("task list")
            .iter()
            .filter(|t| !seen.contains(t["upid"].as_str().unwrap()))
            .cloned()
            .collect();
        assert_eq!(fresh.len(), 1, "expected one new backup task: {tasks}");
        seen.insert(fresh[0]["upid"].as_str().unwrap().to_string());
        assert_eq!(fresh[0]["status"], "ok", "{}", fresh[0]);
        fresh[0]["result"].clone()
    }

    /// A `backup-server` admin command (`gc`, `verify`, `task list`, ...) against this
    /// server, with its config directory.
    pub fn admin(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(bin("backup-server"));
        cmd.args(args)
            .arg("--config-dir")
            .arg(&self.config_dir)
            .stdin(Stdio::null());
        cmd
    }

    /// Runs an admin command with `--output-format json`; panics unless it succeeded.
    /// Runs a verify job on the store and checks that it found nothing wrong.
    pub fn verify_ok(&self) {
        let verify = self.admin_json(&["verify", Self::STORE]);
        assert_eq!(verify["status"], "ok", "{verify}");
    }

    /// Restores archive `root.tar` of `snapshot` into `target` and returns the summary.
    pub fn restore(&self, snapshot: &str, target: &Path) -> serde_json::Value {
        let target = target.to_str().expect("test paths are UTF-8");
        self.client_json(&["restore", snapshot, "root.tar", target])
    }

    pub fn admin_json(&self, args: &[&str]) -> serde_json::Value {
        let output = run_ok(self.admin(args).args(["--output-format", "json"]));
        serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
            panic!(
                "admin printed no JSON ({e}): {}",
                String::from_utf8_lossy(&output.stdout)
            )
        })
    }

    /// The snapshots the server lists.
    pub fn snapshots(&self) -> Vec<serde_json::Value> {
        match self.client_json(&["snapshots"]) {
            serde_json::Value::Array(items) => items,
            other => panic!("snapshots printed {other}"),
        }
    }

    /// Waits until `cond` holds, at most `timeout`.
    pub fn wait_for(&self, timeout: Duration, what: &str, mut cond: impl FnMut() -> bool) {
        let start = Instant::now();
        while !cond() {
            assert!(
                start.elapsed() < timeout,
                "timed out waiting for {what}\nserver log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Runs a command and panics with its output unless it exits 0.
/// Field `key` of a JSON summary as a number.
pub fn u(v: &serde_json::Value, key: &str) -> u64 {
    v[key].as_u64().unwrap_or_else(|| panic!("no {key} in {v}"))
}

pub fn run_ok(cmd: &mut Command) -> Output {
    let output = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(
        output.status.success(),
        "{cmd:?} failed with {}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// Every path under `root` with its size and modification time, to prove that a
/// refused request changed nothing on disk.
pub fn disk_state(root: &Path) -> Vec<(PathBuf, u64, i64, i64)> {
    use std::os::unix::fs::MetadataExt;
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(meta) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            if meta.is_dir() {
                stack.push(path.clone());
            }
            out.push((path, meta.len(), meta.mtime(), meta.mtime_nsec()));
        }
    }
    out.sort();
    out
}

/// Whether an external tool (GNU tar, bsdtar, ...) is installed: `NAME --version` works.
pub fn tool_installed(name: &str) -> bool {
    Command::new(name)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Runs a command that must succeed without a word on stderr; returns its stdout.
pub fn run_quiet(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{cmd:?} failed: {stderr}");
    assert!(stderr.is_empty(), "{cmd:?} complained: {stderr}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}
