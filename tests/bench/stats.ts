/** Small helpers for benchmarks: they print numbers, they assert nothing. */

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export function report(name: string, xs: number[], unit = "ms"): void {
  const fmt = (n: number) => (n >= 100 ? Math.round(n) : Math.round(n * 10) / 10).toString();
  console.log(
    `${name.padEnd(52)} median ${fmt(median(xs))} ${unit}, min ${fmt(Math.min(...xs))}, max ${
      fmt(Math.max(...xs))
    } (n=${xs.length})`,
  );
}

/** RSS and PSS (smaps_rollup) of the manager, its children and dnsmasq, in MiB. */
export async function processMemory(
  sh: (s: string) => Promise<string>,
): Promise<{ text: string; rssKiB: number; pssKiB: number }> {
  const lines = await sh(
    `for p in $(systemctl show -p MainPID --value aos-unit) ` +
      `$(pgrep -P $(systemctl show -p MainPID --value aos-unit)) ` +
      `$(systemctl show -p MainPID --value aos-unit-dnsmasq); do ` +
      `echo "$(cat /proc/$p/comm) $(awk '/^Rss:/ {r=$2} /^Pss:/ {p=$2} END {print r, p}' /proc/$p/smaps_rollup)"; done`,
  );
  let rss = 0;
  let pss = 0;
  // A child that exits between listing and reading (a short-lived nft, conntrack) is skipped.
  const parts = lines.split("\n").filter((l) => /^\S+ \d+ \d+$/.test(l.trim())).map((l) => {
    const [comm, r, p] = l.trim().split(" ");
    rss += Number(r);
    pss += Number(p);
    return `${comm} ${Math.round(Number(r) / 1024)}/${Math.round(Number(p) / 1024)}`;
  });
  return {
    text: `total RSS ${Math.round(rss / 1024)} MiB, PSS ${
      Math.round(pss / 1024)
    } MiB (RSS/PSS MiB: ${parts.join(", ")})`,
    rssKiB: rss,
    pssKiB: pss,
  };
}
