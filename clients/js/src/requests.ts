// Requests answered by a frame that echoes their `ref` (`leave` -> `left`, `history` ->
// `history`). These do not outlive their connection: a `history` page asked of a node that died
// is asked again by the application, which knows whether it still wants it.

import { RookeryError } from "./errors.js";

interface Waiting {
  resolve(frame: unknown): void;
  reject(error: RookeryError): void;
}

export class Requests {
  private readonly waiting = new Map<string, Waiting>();

  /** Registers `ref` and returns the promise its answer settles. */
  expect<T>(ref: string): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.waiting.set(ref, { resolve: resolve as (frame: unknown) => void, reject });
    });
  }

  has(ref: string): boolean {
    return this.waiting.has(ref);
  }

  resolve(ref: string, frame: unknown): boolean {
    const waiting = this.waiting.get(ref);
    if (!waiting) return false;
    this.waiting.delete(ref);
    waiting.resolve(frame);
    return true;
  }

  reject(ref: string, error: RookeryError): boolean {
    const waiting = this.waiting.get(ref);
    if (!waiting) return false;
    this.waiting.delete(ref);
    waiting.reject(error);
    return true;
  }

  rejectAll(error: RookeryError): void {
    const all = [...this.waiting.values()];
    this.waiting.clear();
    for (const waiting of all) waiting.reject(error);
  }
}
