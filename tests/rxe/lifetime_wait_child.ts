// Terminates a worker while its cq.wait() runs on another thread, then lives on for a while:
// prints "survived" unless that thread returned into a library the worker's end unloaded.
const worker = new Worker(new URL("./lifetime_wait_worker.ts", import.meta.url), {
  type: "module",
});
await new Promise((resolve) => worker.onmessage = resolve);
await new Promise((resolve) => setTimeout(resolve, 300)); // inside the native wait
worker.terminate();
await new Promise((resolve) => setTimeout(resolve, 1500)); // the wait wakes every 100 ms
console.log("survived");
