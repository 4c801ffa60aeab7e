/**
 * The phases of one run and their milliseconds, for one log line: the footprint benchmark
 * (tests/bench/footprint_bench.ts) and a user reading the journal see where a start went.
 */
export class Timeline {
  readonly #now: () => number;
  readonly #phases: [string, number][] = [];
  #last: number;

  /** @param now a monotonic clock in ms; the first phase counts from its zero (process start) */
  constructor(now: () => number) {
    this.#now = now;
    this.#last = 0;
  }

  /** Ends the phase running since the previous mark (or since the clock's zero). */
  mark(phase: string): void {
    if (phase.includes(",")) throw new Error(`a phase name has no comma: ${phase}`);
    const t = this.#now();
    this.#phases.push([phase, t - this.#last]);
    this.#last = t;
  }

  /** Milliseconds since the clock's zero at the last mark. */
  get total(): number {
    return this.#last;
  }

  /** "load 180, host 12, ...": every phase in order, whole milliseconds. */
  text(): string {
    return this.#phases.map(([p, ms]) => `${p} ${Math.round(ms)}`).join(", ");
  }
}

/** The phases of a text() line, back as numbers (the benchmark's reader). */
export function parseTimeline(text: string): [string, number][] {
  return text.split(", ").map((part) => {
    const m = /^(.+) (\d+)$/.exec(part);
    if (!m) throw new Error(`not a timeline phase: ${part}`);
    return [m[1]!, Number(m[2])];
  });
}
