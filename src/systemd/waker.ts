/**
 * One loop waiting for "something happened or time passed", without the
 * growth of racing a long-lived promise: each `Promise.race([stop, changed,
 * timer])` leaves a reaction on the promises that did not settle, and a
 * manager that runs for weeks would collect them. Here a wait registers one
 * callback and removes it when it ends.
 */
export class Waker {
  #wake: (() => void) | undefined;
  #pending = false;

  /** Resolves at the next wake() (or one that came since the last wait), or after `ms`. */
  wait(ms: number): Promise<void> {
    if (this.#pending) {
      this.#pending = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.#wake = undefined;
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.#wake = done;
    });
  }

  /** Ends the current wait, or the next one at once. */
  wake(): void {
    if (this.#wake) this.#wake();
    else this.#pending = true;
  }
}
