/**
 * Hostile arguments for property-based tests of the public API: plain objects (and the plain
 * objects and arrays inside them) wrapped in Proxies that count every property read and `in`
 * check, and run a sabotage (close a handle, detach a buffer, close and re-open) at the n-th one.
 * A method that runs user code must then still check what it uses after the last of it: the only
 * accepted outcome of a call whose sabotage fired is a typed error.
 *
 * @module
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { RdmaError } from "../../verbs/errors.ts";

export { fc };

/** Counts accesses through the objects it armed and fires `sabotage` at access number `at`. */
export class Tripwire {
  accesses = 0;
  fired = false;

  constructor(readonly at: number, readonly sabotage: () => void) {}

  #touch(): void {
    if (this.accesses++ === this.at && !this.fired) {
      this.fired = true;
      this.sabotage();
    }
  }

  /** `value` with every plain object and array in it (not class instances) counted. */
  arm<T>(value: T): T {
    if (value === null || typeof value !== "object") return value;
    const prototype = Object.getPrototypeOf(value);
    if (prototype !== Object.prototype && !Array.isArray(value)) return value;
    const armed = new Map<PropertyKey, unknown>();
    return new Proxy(value as object, {
      get: (target, key, receiver) => {
        this.#touch();
        const inner = Reflect.get(target, key, receiver);
        if (typeof key === "symbol" || inner === null || typeof inner !== "object") return inner;
        if (!armed.has(key)) armed.set(key, this.arm(inner));
        return armed.get(key);
      },
      has: (target, key) => {
        this.#touch();
        return Reflect.has(target, key);
      },
    }) as T;
  }
}

/** Whether `error` is one of the API's typed errors (optionally RdmaError with `code`). */
export function isTypedError(error: unknown): boolean {
  return error instanceof TypeError || error instanceof RangeError || error instanceof RdmaError;
}

/**
 * Runs `call` with a tripwire at access `at` that runs `sabotage`: when it fired, the call must
 * throw a typed error (TypeError, RangeError or RdmaError, and `expectCode` when given for an
 * RdmaError); when it did not fire, the call must succeed. Returns whether it fired.
 */
export async function expectRefusedWhenFired(
  at: number,
  sabotage: () => void,
  call: (wire: Tripwire) => unknown,
  what: string,
): Promise<boolean> {
  const wire = new Tripwire(at, sabotage);
  let error: unknown;
  let threw = false;
  try {
    await call(wire);
  } catch (e) {
    threw = true;
    error = e;
  }
  if (wire.fired) {
    assert.ok(threw, `${what}: the sabotage at access ${at} ran, yet the call succeeded`);
    assert.ok(isTypedError(error), `${what}: not a typed error: ${String(error)}`);
  } else if (threw) {
    throw new assert.AssertionError({
      message: `${what}: failed with no sabotage (${wire.accesses} accesses): ${String(error)}`,
    });
  }
  return wire.fired;
}
