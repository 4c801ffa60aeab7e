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
