/**
 * Memory hooks: the opal mem_hooks API (`memHooks`) and its constants.
 *
 * @module
 */
export * from "./mem_hooks.ts";
