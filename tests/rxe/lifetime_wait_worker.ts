// A worker that waits on a completion queue until it is terminated (verbs_lifetime.test.ts).
import { openDevice } from "../../mod.ts";

const ctx = openDevice(Deno.env.get("DENO_RDMA_TEST_DEVICE") ?? "rxe0");
const cq = ctx.createCompletionQueue({ channel: true });
const waiting = cq.wait({ timeoutMs: 60_000 });
(globalThis as unknown as { postMessage(message: unknown): void }).postMessage("waiting");
await waiting;
