//! How long packets wait on the CPU the expiry sweep runs on. A ping
//! crosses a veth pair between two namespaces of its own every 2 ms, from
//! another CPU, with both receive sides steered (RPS) to the sweeping CPU,
//! where their softirqs run, as a NIC queue's would on a gateway. The
//! largest round trip of the pings sent during a walk is the longest a
//! packet arriving on that CPU waited (a walk that kept bottom halves off
//! would show its whole length here).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Result, bail};
use serde_json::{Value, json};

use xnat_tests::netns::{BgChild, Netns, host};

/// The CPU the sweep is pinned to; the ping runs on the next one.
const SWEEP_CPU: usize = 0;
const PING_CPU: usize = 1;

pub struct Probe {
    // Dropped last: the ping runs in the first.
    ping: Option<BgChild>,
    _ns: [Netns; 2],
    /// The thread's CPU mask before the sweep was pinned.
    saved_mask: libc::cpu_set_t,
    /// (walk, start, end) in seconds since the epoch, as ping -D stamps.
    windows: Vec<(String, f64, f64)>,
}

fn now_s() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs_f64()
}

fn affinity(cpus: &[usize]) -> libc::cpu_set_t {
    // SAFETY: a zeroed cpu_set_t is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for &c in cpus {
        // SAFETY: c is below CPU_SETSIZE (a CPU this machine has).
        unsafe { libc::CPU_SET(c, &mut set) };
    }
    set
}

impl Probe {
    /// Sets the probe up and pins the calling thread to the sweep's CPU;
    /// `None` on a machine with one CPU (no other CPU to ping from).
    pub fn start() -> Result<Option<Probe>> {
        if std::thread::available_parallelism().map_or(1, |n| n.get()) < 2 {
            return Ok(None);
        }
        let pid = std::process::id();
        let ns = [
            Netns::create(format!("xb-stall-a-{pid}")),
            Netns::create(format!("xb-stall-b-{pid}")),
        ];
        host(&[
            "ip",
            "link",
            "add",
            "sa",
            "netns",
            ns[0].name(),
            "type",
            "veth",
            "peer",
            "name",
            "sb",
            "netns",
            ns[1].name(),
        ]);
        for (n, dev, addr) in [
            (&ns[0], "sa", "10.77.0.1/24"),
            (&ns[1], "sb", "10.77.0.2/24"),
        ] {
            n.ip(&["addr", "add", addr, "dev", dev]);
            n.ip(&["link", "set", dev, "up"]);
            // sysfs shows a namespace's devices only to a mount made in it.
            host(&[
                "ip",
                "netns",
                "exec",
                n.name(),
                "sh",
                "-c",
                &format!(
                    "echo {:x} > /sys/class/net/{dev}/queues/rx-0/rps_cpus",
                    1u64 << SWEEP_CPU
                ),
            ]);
        }
        let ping = BgChild::spawn(
            "ping",
            ns[0].cmd("taskset").args([
                "-c",
                &PING_CPU.to_string(),
                "ping",
                "-D",
                "-n",
                "-i",
                "0.002",
                "10.77.0.2",
            ]),
        );
        // SAFETY: a zeroed set the kernel fills.
        let mut saved_mask: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        // SAFETY: pid 0 is this thread; the sets are valid.
        unsafe {
            if libc::sched_getaffinity(0, size_of::<libc::cpu_set_t>(), &mut saved_mask) != 0 {
                bail!("sched_getaffinity: {}", std::io::Error::last_os_error());
            }
            let pinned = affinity(&[SWEEP_CPU]);
            if libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &pinned) != 0 {
                bail!("sched_setaffinity: {}", std::io::Error::last_os_error());
            }
        }
        Ok(Some(Probe {
            ping: Some(ping),
            _ns: ns,
            saved_mask,
            windows: Vec::new(),
        }))
    }

    /// Runs `f` (a sweep walking in `walk`) as a window of the probe.
    pub fn during<R>(&mut self, walk: &str, f: impl FnOnce() -> R) -> R {
        let start = now_s();
        let r = f();
        self.windows.push((walk.to_string(), start, now_s()));
        r
    }

    /// Stops the ping, unpins the thread; per walk, the largest round trip
    /// of a ping sent during one of its windows, and how many there were.
    pub fn finish(mut self) -> Value {
        // SAFETY: restores the mask read in `start`.
        unsafe { libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &self.saved_mask) };
        let mut ping = self.ping.take().expect("the ping runs until finish");
        ping.signal(libc::SIGINT);
        ping.wait_exit(Duration::from_secs(30));
        // "[1796448758.109286] 64 bytes from 10.77.0.2: icmp_seq=3352 ttl=64 time=5.03 ms":
        // stamped on receipt, so sent at stamp - time.
        let replies: Vec<(f64, f64)> = ping
            .stdout()
            .lines()
            .filter_map(|l| {
                let stamp: f64 = l.strip_prefix('[')?.split(']').next()?.parse().ok()?;
                let ms: f64 = l.split("time=").nth(1)?.split(' ').next()?.parse().ok()?;
                Some((stamp - ms / 1e3, ms))
            })
            .collect();
        let mut out = serde_json::Map::new();
        for walk in ["user", "kernel"] {
            let (mut max, mut n) = (0f64, 0u64);
            for (_, start, end) in self.windows.iter().filter(|w| w.0 == walk) {
                for &(sent, ms) in &replies {
                    if sent >= *start && sent <= *end {
                        max = max.max(ms);
                        n += 1;
                    }
                }
            }
            out.insert(walk.into(), json!({ "max_rtt_ms": max, "pings": n }));
        }
        out.insert("interval_ms".into(), json!(2));
        Value::Object(out)
    }
}
