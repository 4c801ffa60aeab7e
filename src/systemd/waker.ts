/**
 * Waiting for "something happened or time passed", without the growth of
 * racing a long-lived promise: each `Promise.race([stop, changed, timer])`
 * leaves a reaction on the promises that did not settle, and a manager that
 * runs for weeks would collect them. Here a wait registers one callback and
 * removes it when it ends. Several waits may run at once (one per node while
 * powering down); a wake ends all of them.
 */
export class Waker {
  #waiting = new Set<() => void>();
  #pending = false;

  /** Resolves at the next wake() (or one that came while nobody waited), or after `ms`. */
  wait(ms: number): Promise<void> {
    if (this.#pending) {
      this.#pending = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.#waiting.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.#waiting.add(done);
    });
  }

  /** Ends every current wait, or the next one at once. */
  wake(): void {
    if (this.#waiting.size === 0) {
      this.#pending = true;
      return;
    }
    for (const done of [...this.#waiting]) done();
  }
}
