/** Command-line helpers shared by the task drivers in tools/. */

/** The positive integer after `name` in Deno.args, or `fallback`; exits 2 on a bad value. */
export function numberArgument(name: string, fallback: number): number {
  const at = Deno.args.indexOf(name);
  if (at < 0) return fallback;
  const value = Number(Deno.args[at + 1]);
  if (!Number.isSafeInteger(value) || value < 1) {
    console.error(`${name} needs a positive integer`);
    Deno.exit(2);
  }
  return value;
}
