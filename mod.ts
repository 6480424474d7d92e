/**
 * deno-rdma: RDMA verbs for Deno, with a lazy-unpin registration cache kept correct by native
 * memory-release hooks.
 *
 * @module
 */

export * from "./verbs/mod.ts";
export * from "./cache/mod.ts";
