//! A one-node Slurm cluster for tests, brought up and torn down by the test itself.
//!
//! [`MiniSlurm::start`] makes a scratch directory, starts a private `munged` (its own key,
//! socket and seed file), writes a `slurm.conf` (the settings of
//! `../shared/reference/slurm.md`: one node `localhost` at 127.0.0.1 with every CPU, partition
//! `debug`, `MinJobAge=5`, `batch_sched_delay=0`, `jobcomp/filetxt`) and starts `slurmctld -D`
//! and `slurmd -D -N localhost` as child processes, then waits until `sinfo` shows the node
//! idle (about 1 s cold). Client commands talk to it when `SLURM_CONF` is set: use
//! [`MiniSlurm::env`] or [`MiniSlurm::command`].
//!
//! Two departures from the reference settings, both so that several clusters can run side by
//! side (tests of one binary run on parallel threads): `SlurmctldPort` and `SlurmdPort` are free
//! loopback ports picked at start-up instead of the default 6817/6818.
//!
//! Dropping a [`MiniSlurm`] (also while a test panics) cancels its jobs, stops `slurmd`,
//! `slurmctld` and `munged` by PID (SIGTERM, SIGKILL after 5 s), reaps them and deletes the
//! scratch directory. If the test process itself dies without unwinding (SIGKILL, abort), a
//! small watchdog shell started beside the daemons notices within a second, cancels the jobs,
//! stops the daemons and deletes the scratch directory.
//!
//! The Debian packages `slurmctld slurmd slurm-client munge` provide the programs
//! (`.ci/run` installs them); [`MiniSlurm::available`] says which ones are missing.

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

/// The programs a [`MiniSlurm`] runs: daemons, then client commands.
const PROGRAMS: [&str; 8] = [
    "munged",
    "slurmctld",
    "slurmd",
    "sinfo",
    "sbatch",
    "squeue",
    "scancel",
    "scontrol",
];

/// Where the daemons live besides `PATH` (a non-root `PATH` often lacks the `sbin`s).
const EXTRA_DIRS: [&str; 3] = ["/usr/sbin", "/sbin", "/usr/local/sbin"];

/// How long [`MiniSlurm::start`] waits for the node to become idle.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a daemon gets between SIGTERM and SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// The partition's name.
const PARTITION: &str = "debug";

/// A running one-node Slurm cluster (with its own munge daemon) in a scratch directory.
/// Stopped when dropped.
pub struct MiniSlurm {
    // Children are stopped by `Drop` before the scratch directory (the last field) is deleted.
    watchdog: Option<Child>,
    slurmd: Option<Child>,
    slurmctld: Option<Child>,
    munged: Option<Child>,
    conf: PathBuf,
    log_dir: PathBuf,
    user: String,
    startup: Duration,
    dir: tempfile::TempDir,
}

impl MiniSlurm {
    /// `Ok` if every program a cluster needs is installed; otherwise an error naming the
    /// missing ones and the Debian packages that provide them.
    pub fn available() -> Result<(), String> {
        let missing: Vec<&str> = PROGRAMS.iter().copied().filter(|p| find_program(p).is_none()).collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "Slurm is not installed: {} not found on PATH or in {} (install the Debian \
                 packages: apt-get install --no-install-recommends slurmctld slurmd \
                 slurm-client munge; .ci/run does this)",
                missing.join(", "),
                EXTRA_DIRS.join(":")
            ))
        }
    }

    /// Starts munge, the controller and the node in a fresh scratch directory and waits (up to
    /// 30 s) until the node is idle. On failure everything started is stopped again and the
    /// error includes the last lines of the daemons' logs.
    pub fn start() -> Result<MiniSlurm, String> {
        Self::available()?;
        let t0 = Instant::now();
        let user = current_user()?;
        let cpus = cpu_count();
        let dir = tempfile::Builder::new()
            .prefix("minislurm-")
            .tempdir()
            .map_err(|e| format!("create the scratch directory: {e}"))?;
        let root = dir.path().to_path_buf();
        // munged insists that every directory on the way to its socket is searchable by all.
        set_mode(&root, 0o755)?;
        for sub in ["run", "log", "state", "spool"] {
            mkdir(&root.join(sub), 0o755)?;
        }
        mkdir(&root.join("munge"), 0o700)?;
        let log_dir = root.join("log");
        let conf = root.join("slurm.conf");
        let mut s = MiniSlurm {
            watchdog: None,
            slurmd: None,
            slurmctld: None,
            munged: None,
            conf: conf.clone(),
            log_dir: log_dir.clone(),
            user: user.clone(),
            startup: Duration::ZERO,
            dir,
        };

        // munge: a private key and a daemon in the foreground (so that it is our child).
        let key = root.join("munge/munge.key");
        write_munge_key(&key)?;
        let socket = root.join("run/munge.socket");
        let mut munged = Command::new(program("munged"));
        munged
            .arg("--foreground")
            .arg(format!("--key-file={}", key.display()))
            .arg(format!("--socket={}", socket.display()))
            .arg(format!("--pid-file={}", root.join("run/munged.pid").display()))
            .arg(format!("--seed-file={}", root.join("munge/munged.seed").display()));
        s.munged = Some(spawn_daemon(munged, &log_dir.join("munged.log"))?);
        s.wait_for_munge(&socket)?;

        // Slurm.
        let (ctld_port, slurmd_port) = free_ports()?;
        fs::write(&conf, slurm_conf(&root, &user, cpus, ctld_port, slurmd_port))
            .map_err(|e| format!("write {}: {e}", conf.display()))?;
        let mut ctld = slurm_command("slurmctld", &conf);
        ctld.arg("-D").arg("-f").arg(&conf);
        s.slurmctld = Some(spawn_daemon(ctld, &log_dir.join("slurmctld.stderr"))?);
        let mut slurmd = slurm_command("slurmd", &conf);
        slurmd.arg("-D").arg("-N").arg("localhost").arg("-f").arg(&conf);
        s.slurmd = Some(spawn_daemon(slurmd, &log_dir.join("slurmd.stderr"))?);
        s.watchdog = Some(s.spawn_watchdog()?);
        s.wait_until_idle(t0 + START_TIMEOUT)?;
        s.startup = t0.elapsed();
        Ok(s)
    }

    /// The cluster's `slurm.conf`.
    pub fn conf_path(&self) -> &Path {
        &self.conf
    }

    /// The environment client commands (`sbatch`, `squeue`, …) need to reach this cluster:
    /// `SLURM_CONF`. (The munge socket is named in `slurm.conf`.)
    pub fn env(&self) -> Vec<(String, String)> {
        vec![("SLURM_CONF".to_string(), self.conf.display().to_string())]
    }

    /// A command for a client program (`sbatch`, `squeue`, …) with [`MiniSlurm::env`] set and
    /// every other `SLURM_*`, `SBATCH_*`, `SALLOC_*` and `SRUN_*` variable of this process
    /// removed, so that a test running inside a real Slurm job does not leak its settings.
    pub fn command(&self, name: &str) -> Command {
        slurm_command(name, &self.conf)
    }

    /// The partition (the only one, and the default): `debug`.
    pub fn partition(&self) -> &str {
        PARTITION
    }

    /// The `jobcomp/filetxt` log: one line per finished job or array task, `Key=Value` pairs
    /// separated by spaces (`JobId`, `JobState`, `ExitCode`, `ArrayJobId`, `ArrayTaskId`, …).
    pub fn jobcomp_log(&self) -> PathBuf {
        self.log_dir.join("jobcomp.log")
    }

    /// The records of [`MiniSlurm::jobcomp_log`] so far, one map per line (a value containing
    /// a space, such as a job name with one, is cut at the space). Empty if nothing finished.
    pub fn jobcomp_records(&self) -> Vec<BTreeMap<String, String>> {
        let text = fs::read_to_string(self.jobcomp_log()).unwrap_or_default();
        text.lines()
            .map(|line| {
                line.split_whitespace()
                    .filter_map(|kv| kv.split_once('='))
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect()
            })
            .collect()
    }

    /// The scratch directory (`slurm.conf`, `log/`, `state/`, `spool/`, `run/`); deleted on drop.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The user the daemons run as and jobs run as (`SlurmUser`, `SlurmdUser`).
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The daemons' names and process ids (`munged`, `slurmctld`, `slurmd`).
    pub fn pids(&self) -> Vec<(&'static str, u32)> {
        [
            ("munged", &self.munged),
            ("slurmctld", &self.slurmctld),
            ("slurmd", &self.slurmd),
        ]
        .into_iter()
        .filter_map(|(name, c)| c.as_ref().map(|c| (name, c.id())))
        .collect()
    }

    /// How long [`MiniSlurm::start`] took, from its call to the node being idle.
    pub fn startup_time(&self) -> Duration {
        self.startup
    }

    /// The last `n` lines of each daemon's log, for error messages.
    pub fn log_tails(&self, n: usize) -> String {
        let mut out = String::new();
        for (name, log, stderr) in [
            ("munged", "munged.log", None),
            ("slurmctld", "slurmctld.log", Some("slurmctld.stderr")),
            ("slurmd", "slurmd.log", Some("slurmd.stderr")),
        ] {
            let mut text = fs::read_to_string(self.log_dir.join(log)).unwrap_or_default();
            // Until a daemon opens its log file (a bad configuration), it writes to stderr.
            if text.trim().is_empty()
                && let Some(e) = stderr
            {
                text = fs::read_to_string(self.log_dir.join(e)).unwrap_or_default();
            }
            let lines: Vec<&str> = text.lines().collect();
            let tail = &lines[lines.len().saturating_sub(n)..];
            out.push_str(&format!("--- {name} (last {} lines) ---\n", tail.len()));
            for l in tail {
                out.push_str(l);
                out.push('\n');
            }
        }
        out
    }

    fn fail(&self, what: &str) -> String {
        format!(
            "MiniSlurm in {}: {what}\n{}",
            self.dir.path().display(),
            self.log_tails(20)
        )
    }

    /// Fails if a daemon has exited already.
    fn check_daemons(&mut self) -> Result<(), String> {
        let mut dead = Vec::new();
        for (name, child) in [
            ("munged", &mut self.munged),
            ("slurmctld", &mut self.slurmctld),
            ("slurmd", &mut self.slurmd),
        ] {
            if let Some(c) = child
                && let Ok(Some(status)) = c.try_wait()
            {
                dead.push(format!("{name} exited ({status})"));
                *child = None;
            }
        }
        if dead.is_empty() {
            Ok(())
        } else {
            Err(self.fail(&dead.join(", ")))
        }
    }

    fn wait_for_munge(&mut self, socket: &Path) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !socket.exists() {
            self.check_daemons()?;
            if Instant::now() > deadline {
                return Err(self.fail("munged did not create its socket within 10 s"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    fn wait_until_idle(&mut self, deadline: Instant) -> Result<(), String> {
        let mut last = String::new();
        loop {
            self.check_daemons()?;
            let now = Instant::now();
            if now > deadline {
                return Err(self.fail(&format!(
                    "the node was not idle within {} s (last sinfo: {last})",
                    START_TIMEOUT.as_secs()
                )));
            }
            let mut sinfo = self.command("sinfo");
            sinfo.args(["--noheader", "--Node", "--format=%t"]);
            match run_with_timeout(&mut sinfo, (deadline - now).max(Duration::from_secs(1))) {
                Ok(out) => {
                    let state = String::from_utf8_lossy(&out.stdout).trim().to_string();
                    if out.status.success() && state == "idle" {
                        return Ok(());
                    }
                    last = format!(
                        "{} {state:?} {:?}",
                        out.status,
                        String::from_utf8_lossy(&out.stderr).trim()
                    );
                }
                Err(e) => last = e,
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// A shell that, if this process disappears without dropping us, cancels the jobs, stops
    /// the daemons and deletes the scratch directory.
    fn spawn_watchdog(&self) -> Result<Child, String> {
        let pids: Vec<String> = [&self.slurmd, &self.slurmctld, &self.munged]
            .into_iter()
            .flatten()
            .map(|c| c.id().to_string())
            .collect();
        self.command("sh")
            .arg("-c")
            .arg(
                "parent=$1 dir=$2 scancel=$3 user=$4; shift 4; \
                 while kill -0 \"$parent\" 2>/dev/null; do sleep 1; done; \
                 timeout 5 \"$scancel\" --user=\"$user\" 2>/dev/null; sleep 1; \
                 kill -TERM \"$@\" 2>/dev/null; sleep 5; kill -KILL \"$@\" 2>/dev/null; \
                 rm -rf \"$dir\"",
            )
            .arg("minislurm-watchdog")
            .arg(std::process::id().to_string())
            .arg(self.dir.path())
            .arg(program("scancel"))
            .arg(&self.user)
            .args(pids)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("start the watchdog shell: {e}"))
    }

    /// Cancels every job of this cluster and waits (up to 5 s) until none is left running.
    fn cancel_jobs(&self) {
        let jobs = |s: &MiniSlurm| -> Option<String> {
            let mut squeue = s.command("squeue");
            squeue.args(["--noheader", "--format=%i"]);
            let out = run_with_timeout(&mut squeue, Duration::from_secs(5)).ok()?;
            let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
            (out.status.success() && !text.is_empty()).then_some(text)
        };
        if jobs(self).is_none() {
            return;
        }
        let mut scancel = self.command("scancel");
        scancel.arg(format!("--user={}", self.user));
        let _ = run_with_timeout(&mut scancel, Duration::from_secs(5));
        let deadline = Instant::now() + Duration::from_secs(5);
        while jobs(self).is_some() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for MiniSlurm {
    fn drop(&mut self) {
        if let Some(mut w) = self.watchdog.take() {
            let _ = w.kill();
            let _ = w.wait();
        }
        if self.slurmctld.is_some() && self.slurmd.is_some() && self.munged.is_some() {
            self.cancel_jobs();
        }
        // slurmd and slurmctld together, then munged (which they talk to while stopping).
        let mut slurm: Vec<Child> = [self.slurmd.take(), self.slurmctld.take()]
            .into_iter()
            .flatten()
            .collect();
        stop_children(&mut slurm);
        let mut munge: Vec<Child> = self.munged.take().into_iter().collect();
        stop_children(&mut munge);
    }
}

/// SIGTERM to each child, then waits for all; SIGKILL to those still running after
/// [`STOP_GRACE`]; every child is reaped.
fn stop_children(children: &mut [Child]) {
    for c in children.iter_mut() {
        if let Ok(None) = c.try_wait() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(c.id().to_string())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
    let deadline = Instant::now() + STOP_GRACE;
    loop {
        let mut running = 0;
        for c in children.iter_mut() {
            if let Ok(None) = c.try_wait() {
                running += 1;
            }
        }
        if running == 0 {
            return;
        }
        if Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    for c in children.iter_mut() {
        if let Ok(None) = c.try_wait() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Runs `cmd` (stdin closed, stdout and stderr captured) and kills it after `timeout`.
pub fn run_with_timeout(cmd: &mut Command, timeout: Duration) -> Result<Output, String> {
    let what = format!("{:?}", cmd.get_program());
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("run {what}: {e}"))?;
    let read = |r: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut r) = r {
                let _ = r.read_to_end(&mut buf);
            }
            buf
        })
    };
    let out = read(child.stdout.take().map(|r| Box::new(r) as Box<dyn Read + Send>));
    let err = read(child.stderr.take().map(|r| Box::new(r) as Box<dyn Read + Send>));
    let deadline = Instant::now() + timeout;
    let status: ExitStatus = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{what} did not finish within {timeout:?}"));
            }
            Err(e) => return Err(format!("wait for {what}: {e}")),
        }
    };
    Ok(Output {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    })
}

/// `name` on `PATH` or in one of [`EXTRA_DIRS`].
fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(EXTRA_DIRS.iter().map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| {
            fs::metadata(p)
                .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
                .unwrap_or(false)
        })
}

fn program(name: &str) -> PathBuf {
    find_program(name).unwrap_or_else(|| name.into())
}

/// A Slurm program with `SLURM_CONF=conf` and none of this process's other `SLURM_*`,
/// `SBATCH_*`, `SALLOC_*` or `SRUN_*` variables.
fn slurm_command(name: &str, conf: &Path) -> Command {
    let mut cmd = Command::new(program(name));
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy();
        if ["SLURM_", "SBATCH_", "SALLOC_", "SRUN_"]
            .iter()
            .any(|p| k.starts_with(p))
        {
            cmd.env_remove(&*k);
        }
    }
    cmd.env("SLURM_CONF", conf);
    cmd
}

fn current_user() -> Result<String, String> {
    let out = Command::new("id")
        .arg("-un")
        .output()
        .map_err(|e| format!("run id -un: {e}"))?;
    let name = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if out.status.success() && !name.is_empty() {
        Ok(name)
    } else {
        Err(format!(
            "this user has no name (id -un: {}); Slurm needs one for SlurmUser",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// The CPUs this process may use (as `nproc` counts them).
fn cpu_count() -> usize {
    Command::new("nproc")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .filter(|&n: &usize| n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// Two distinct loopback ports that were free a moment ago.
fn free_ports() -> Result<(u16, u16), String> {
    let bind = || {
        TcpListener::bind("127.0.0.1:0")
            .and_then(|l| Ok((l.local_addr()?.port(), l)))
            .map_err(|e| format!("find a free port: {e}"))
    };
    // Both listeners are held together so that the two ports differ.
    let (a, _la) = bind()?;
    let (b, _lb) = bind()?;
    Ok((a, b))
}

fn mkdir(p: &Path, mode: u32) -> Result<(), String> {
    fs::create_dir(p).map_err(|e| format!("create {}: {e}", p.display()))?;
    set_mode(p, mode)
}

fn set_mode(p: &Path, mode: u32) -> Result<(), String> {
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).map_err(|e| format!("chmod {}: {e}", p.display()))
}

/// 1 KiB of random bytes, mode 0400.
fn write_munge_key(key: &Path) -> Result<(), String> {
    let mut bytes = vec![0u8; 1024];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| format!("read /dev/urandom: {e}"))?;
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o400)
        .open(key)
        .and_then(|mut f| f.write_all(&bytes))
        .map_err(|e| format!("write {}: {e}", key.display()))
}

/// Starts a daemon with stdin closed and stdout and stderr appended to `log`.
fn spawn_daemon(mut cmd: Command, log: &Path) -> Result<Child, String> {
    let open = || {
        fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(|e| format!("open {}: {e}", log.display()))
    };
    cmd.stdin(Stdio::null())
        .stdout(open()?)
        .stderr(open()?)
        .spawn()
        .map_err(|e| format!("start {:?}: {e}", cmd.get_program()))
}

fn slurm_conf(root: &Path, user: &str, cpus: usize, ctld_port: u16, slurmd_port: u16) -> String {
    let r = root.display();
    format!(
        "# Written by spinnbed-tests' MiniSlurm (tests/src/slurm.rs).
ClusterName=ci
SlurmctldHost=localhost
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
SlurmUser={user}
SlurmdUser={user}
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={r}/run/munge.socket
StateSaveLocation={r}/state
SlurmdSpoolDir={r}/spool
SlurmctldPidFile={r}/run/slurmctld.pid
SlurmdPidFile={r}/run/slurmd.pid
SlurmctldLogFile={r}/log/slurmctld.log
SlurmdLogFile={r}/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc={r}/log/jobcomp.log
MpiDefault=none
MailProg=/bin/true
SwitchType=switch/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0
ReturnToService=2
SlurmdParameters=config_overrides
MinJobAge=5
MaxArraySize=10001
NodeName=localhost NodeAddr=127.0.0.1 CPUs={cpus} RealMemory=1024 State=UNKNOWN
PartitionName={PARTITION} Nodes=localhost Default=YES MaxTime=INFINITE State=UP
"
    )
}
