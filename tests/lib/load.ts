/** A bounded CPU load for tests and benchmarks that must hold under a busy machine. */

/** Keeps `n` CPUs busy until stopped (bounded: each loop ends by itself after 10 minutes). */
export function busyCpus(n: number): { stop(): Promise<void> } {
  const loops = Array.from({ length: n }, () =>
    new Deno.Command("timeout", {
      args: ["600", "sh", "-c", "while :; do :; done"],
      stdout: "null",
      stderr: "null",
    }).spawn());
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
