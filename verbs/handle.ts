/**
 * Lifetime of native verbs objects.
 *
 * The rule: a parent refuses to close while children are open. Closing a protection domain that
 * still has memory regions, or a context that still has protection domains, throws RdmaError
 * EBUSY naming what is still open; close children first (`using` declarations do this naturally,
 * since they are disposed in reverse order). `close()` is idempotent; any other use of a closed
 * handle throws RdmaError EBADF. `[Symbol.dispose]` is the one lenient path: disposing a parent
 * whose children are still open (an exception skipped their cleanup, or they belong to someone
 * else, such as a registration cache) closes it for its user at once and destroys it when its last
 * child closes, so that disposal never masks the exception that is unwinding.
 *
 * Safety net: a handle that becomes unreachable without being closed is closed by a
 * FinalizationRegistry. Its native state (not the handle) is what the registry holds, and it
 * references its parents' native state, so a parent is never destroyed before its children: a
 * collected parent with open children is destroyed when its last child goes.
 *
 * A native call in flight on another thread (a completion-queue wait) pins its handle: closing it
 * then marks it closed at once and destroys it when the call returns.
 *
 * @module
 */
import { Errno, errorFromResult, RdmaError } from "./errors.ts";

/**
 * Bumped whenever a handle closes or is marked to be destroyed, so code that keeps native pointers
 * between calls (a prepared work request) checks one number per call and revalidates its handles
 * only after something closed.
 */
export let closeEpoch = 0;

/** The native state of one handle, shared with the FinalizationRegistry. */
class NativeResource {
  pointer: Deno.PointerObject | null;
  /** Open children by kind, for the EBUSY message. */
  readonly children = new Map<string, number>();
  liveChildren = 0;
  /** The handle is gone (collected or closed while pinned): destroy when possible. */
  releaseWhenIdle = false;
  /** Native calls in flight on other threads. */
  pins = 0;

  constructor(
    pointer: Deno.PointerObject,
    readonly kind: string,
    readonly destroyVerb: string,
    readonly destroy: (pointer: Deno.PointerObject) => number,
    readonly parents: readonly NativeResource[],
    /** Objects that must outlive the native object (a registered buffer). */
    readonly keepAlive: unknown,
  ) {
    this.pointer = pointer;
  }

  /** Destroys the native object now; throws RdmaError if the verb fails (it stays open). */
  release(): void {
    const pointer = this.pointer;
    if (pointer === null) return;
    const result = this.destroy(pointer);
    if (result !== 0) throw errorFromResult(this.destroyVerb, result, this.kind);
    this.pointer = null;
    closeEpoch++;
    for (const parent of this.parents) parent.childClosed(this.kind);
  }

  /** Destroys the native object if nothing keeps it; errors are dropped (nobody to tell). */
  releaseIfIdle(): void {
    if (this.pointer === null || this.liveChildren > 0 || this.pins > 0) return;
    try {
      this.release();
    } catch {
      // A finalizer cannot report; the object stays allocated until the process exits, and so
      // does what it keeps alive (a region the device may still write to keeps its buffer).
      undestroyed.add(this);
    }
  }

  childOpened(kind: string): void {
    this.liveChildren++;
    this.children.set(kind, (this.children.get(kind) ?? 0) + 1);
  }

  childClosed(kind: string): void {
    this.liveChildren--;
    const left = (this.children.get(kind) ?? 1) - 1;
    if (left === 0) this.children.delete(kind);
    else this.children.set(kind, left);
    if (this.releaseWhenIdle) this.releaseIfIdle();
  }

  describeChildren(): string {
    return [...this.children].map(([kind, n]) => `${n} ${kind}${n === 1 ? "" : "s"}`).join(", ");
  }
}

/** Native objects whose destroy verb failed after their handle was gone: kept reachable. */
const undestroyed = new Set<NativeResource>();

const leaked = new FinalizationRegistry<NativeResource>((resource) => {
  resource.releaseWhenIdle = true;
  closeEpoch++;
  resource.releaseIfIdle();
});

/** Base class of every verbs handle: idempotent close, `using`, parent/child bookkeeping. */
export abstract class NativeHandle implements Disposable {
  readonly #resource: NativeResource;

  /**
   * Takes ownership of `pointer`, a native `kind` object that `destroy` (the verb `destroyVerb`,
   * named in errors) destroys; it counts as an open child of each of `parents` until then, and
   * `keepAlive` (a registered buffer) is kept referenced with it.
   */
  protected constructor(
    pointer: Deno.PointerObject,
    kind: string,
    destroyVerb: string,
    destroy: (pointer: Deno.PointerObject) => number,
    parents: readonly NativeHandle[] = [],
    keepAlive?: unknown,
  ) {
    // Once per parent: a queue pair whose send and receive queues are one CQ is one child of it.
    const parentResources = [...new Set(parents)].map((p) => p.#resource);
    this.#resource = new NativeResource(
      pointer,
      kind,
      destroyVerb,
      destroy,
      parentResources,
      keepAlive,
    );
    for (const parent of parentResources) parent.childOpened(kind);
    leaked.register(this, this.#resource, this.#resource);
  }

  /**
   * Counts something that is not a handle but uses `parent`'s native object (a registration cache
   * over a protection domain) as one of its open children: `parent` refuses to close (EBUSY naming
   * `kind`) and is never destroyed while it lasts. Returns the release, idempotent, to call when
   * that user is done. Throws RdmaError EBADF when `parent` is closed.
   */
  static holdOpen(parent: NativeHandle, kind: string): () => void {
    parent.pointerFor(kind);
    const resource = parent.#resource;
    resource.childOpened(kind);
    let held = true;
    return () => {
      if (!held) return;
      held = false;
      resource.childClosed(kind);
    };
  }

  /** What it is: "Context", "ProtectionDomain", "QueuePair", ... */
  get kind(): string {
    return this.#resource.kind;
  }

  /**
   * `handle` if it is a `kind` handle, else a TypeError: the static factories pass their parent's
   * pointer to native code as that type, and another handle's would be misread there.
   */
  static expect<T extends NativeHandle>(handle: T, kind: string, what: string): T {
    if (!(handle instanceof NativeHandle) || handle.#resource.kind !== kind) {
      throw new TypeError(`${what} must be a ${kind}`);
    }
    return handle;
  }

  /** True once `close()` succeeded. */
  get closed(): boolean {
    return this.#resource.pointer === null || this.#resource.releaseWhenIdle;
  }

  /**
   * The native pointer (e.g. `struct ibv_pd *`), for native code of this project that takes it.
   * Throws RdmaError EBADF after close.
   */
  get pointer(): Deno.PointerObject {
    return this.pointerFor("pointer");
  }

  /**
   * The native pointer, for a call of `verb` (used by the classes that create children); throws
   * RdmaError EBADF naming the verb after close.
   */
  pointerFor(verb: string): Deno.PointerObject {
    const resource = this.#resource;
    if (resource.pointer === null || resource.releaseWhenIdle) {
      throw new RdmaError(verb, Errno.EBADF, `${resource.kind} is closed`);
    }
    return resource.pointer;
  }

  /**
   * Called once when the handle closes for its user, before the native object is destroyed (at
   * once, or later when its last child or pinned call ends): subclasses end their pending waits.
   */
  protected whenClosed(): void {}

  /** Marks a native call in flight on another thread; pair with `unpin()`. */
  protected pin(verb: string): Deno.PointerObject {
    const pointer = this.pointerFor(verb);
    this.#resource.pins++;
    return pointer;
  }

  /** Ends a call marked by `pin()`; destroys the object if it was closed meanwhile. */
  protected unpin(): void {
    const resource = this.#resource;
    resource.pins--;
    if (resource.releaseWhenIdle) resource.releaseIfIdle();
  }

  /**
   * Destroys the native object. Idempotent. Throws RdmaError EBUSY while children are open (the
   * message names them), or the destroy verb's error (the handle then stays open).
   */
  close(): void {
    const resource = this.#resource;
    if (resource.pointer === null || resource.releaseWhenIdle) return;
    if (resource.liveChildren > 0) {
      throw new RdmaError(
        resource.destroyVerb,
        Errno.EBUSY,
        `${resource.kind} still has open ${resource.describeChildren()}; close them first`,
      );
    }
    this.whenClosed();
    if (resource.pins > 0) {
      // A call on another thread still uses it: closed now, destroyed when the call returns.
      resource.releaseWhenIdle = true;
      closeEpoch++;
    } else {
      resource.release();
    }
    leaked.unregister(resource);
  }

  /**
   * What `using` calls. Like `close()`, except that a parent with open children does not throw:
   * it is closed for its user at once and destroyed when its last child closes. An exception
   * unwinding through `using` declarations (which may skip children's cleanup) is therefore never
   * masked by an EBUSY from a parent's disposal.
   */
  [Symbol.dispose](): void {
    const resource = this.#resource;
    if (resource.pointer !== null && !resource.releaseWhenIdle && resource.liveChildren > 0) {
      resource.releaseWhenIdle = true;
      closeEpoch++;
      this.whenClosed();
      return;
    }
    this.close();
  }
}
