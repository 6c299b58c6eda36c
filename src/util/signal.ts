/**
 * A typed single-event emitter. Listener errors are caught and reported, never thrown into the emitter:
 * one faulty subscriber must not break the media path of everyone else.
 */
export type Unsubscribe = () => void;

let reportListenerError: (err: unknown) => void = (err) => {
  console.error("listener error", err);
};

/** Install the process-wide reporter (the server points it at the structured logger). */
export function setListenerErrorReporter(fn: (err: unknown) => void): void {
  reportListenerError = fn;
}

export class Signal<T> {
  private listeners: ((value: T) => void)[] = [];

  subscribe(fn: (value: T) => void): Unsubscribe {
    this.listeners.push(fn);
    return () => {
      this.listeners = this.listeners.filter((l) => l !== fn);
    };
  }

  /** Resolves with the next emitted value. */
  next(): Promise<T> {
    return new Promise((resolve) => {
      const off = this.subscribe((v) => {
        off();
        resolve(v);
      });
    });
  }

  emit(value: T): void {
    for (const l of this.listeners) {
      try {
        l(value);
      } catch (err) {
        reportListenerError(err);
      }
    }
  }

  clear(): void {
    this.listeners = [];
  }
}
