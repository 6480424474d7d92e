/**
 * Runs an example's main function and turns a thrown error into one readable line on stderr and
 * exit status 1 (set DENO_RDMA_EXAMPLE_TRACE=1 for the stack).
 *
 * @module
 */

/** Resolves to `main()`'s exit status, or 1 after printing what went wrong. */
export async function runMain(main: () => Promise<number>): Promise<number> {
  try {
    return await main();
  } catch (e) {
    const trace = Deno.env.get("DENO_RDMA_EXAMPLE_TRACE") === "1";
    console.error(`error: ${e instanceof Error ? (trace ? e.stack : e.message) : String(e)}`);
    return 1;
  }
}
