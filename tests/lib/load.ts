/** A bounded CPU load for tests and benchmarks that must hold under a busy machine. */

/** Each busy loop ends by itself after this long, whatever happens to the test. */
const LOOP_SECONDS = 600;

function spawnLoops(n: number): Deno.ChildProcess[] {
  return Array.from({ length: n }, () =>
    new Deno.Command("timeout", {
      args: [String(LOOP_SECONDS), "sh", "-c", "while :; do :; done"],
      stdout: "null",
      stderr: "null",
    }).spawn());
}

/** Keeps `n` CPUs busy until stopped (bounded: each loop ends by itself after 10 minutes). */
export function busyCpus(n: number): { stop(): Promise<void> } {
  const loops = spawnLoops(n);
  return {
    async stop() {
      for (const p of loops) {
        try {
          // timeout passes SIGTERM on to its loop (SIGKILL would leave the loop running).
          p.kill("SIGTERM");
        } catch { /* already gone */ }
      }
      await Promise.all(loops.map((p) => p.status));
    },
  };
}

/** Where the machine-wide load keeps who uses it (tests run as root). */
const SHARED_DIR = "/run/aos-unit-tests";

interface SharedLoad {
  users: number;
  pids: number[];
}

const alive = (pid: number) => {
  try {
    Deno.statSync(`/proc/${pid}`);
    return true;
  } catch {
    return false;
  }
};

/** Runs `change` on the shared load's record, under an exclusive lock across processes. */
async function withSharedLoad(change: (s: SharedLoad) => void): Promise<void> {
  await Deno.mkdir(SHARED_DIR, { recursive: true });
  const lock = await Deno.open(`${SHARED_DIR}/load.lock`, { create: true, write: true });
  try {
    await lock.lock(true);
    const path = `${SHARED_DIR}/load.json`;
    let s: SharedLoad = { users: 0, pids: [] };
    try {
      s = JSON.parse(await Deno.readTextFile(path));
    } catch { /* none yet */ }
    // A run that died left users behind: its loops ended (or end) by themselves.
    if (!s.pids.some(alive)) s = { users: 0, pids: [] };
    change(s);
    await Deno.writeTextFile(path, JSON.stringify(s));
  } finally {
    lock.close();
  }
}

/**
 * Keeps `n` CPUs of the machine busy while any caller holds it: the tier-3 releases run side
 * by side, and two loaded steps at once share one load of `n` loops instead of doubling it.
 */
export async function sharedBusyCpus(n: number): Promise<{ stop(): Promise<void> }> {
  await withSharedLoad((s) => {
    if (s.users === 0) {
      s.pids = spawnLoops(n).map((p) => {
        p.unref(); // whoever releases last stops them, maybe another worker
        return p.pid;
      });
    }
    s.users++;
  });
  let stopped = false;
  return {
    async stop() {
      if (stopped) return;
      stopped = true;
      await withSharedLoad((s) => {
        s.users--;
        if (s.users > 0) return;
        for (const pid of s.pids) {
          try {
            // timeout passes SIGTERM on to its loop (SIGKILL would leave the loop running).
            Deno.kill(pid, "SIGTERM");
          } catch { /* already gone */ }
        }
        s.pids = [];
        s.users = 0;
      });
    },
  };
}
