// An importing application, as a project that depends on deno-rdma by URL would be: the working
// tree served over a loopback HTTP server, an application in an empty temporary folder, its own
// Deno module cache (DENO_DIR) and native cache (DENO_RDMA_CACHE_DIR), run as a child process.
import { ENV_VARS } from "../../ffi/native_build.ts";

export const ROOT = new URL("../../", import.meta.url).pathname.replace(/\/$/, "");
export const DENO = Deno.execPath();
export const ENV_FLAG = `--allow-env=${ENV_VARS.join(",")}`;

/** A loopback HTTP server of the working tree; `overrides` replaces files by repo-relative path. */
export interface TreeServer {
  /** `http://127.0.0.1:<port>/` */
  base: string;
  /** `127.0.0.1:<port>` */
  host: string;
  /** Requests served, by path. */
  requests: string[];
  close(): Promise<void>;
}

export function serveTree(overrides: Record<string, string> = {}): TreeServer {
  const requests: string[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (request) => {
    const path = decodeURIComponent(new URL(request.url).pathname).replace(/^\/+/, "");
    requests.push(path);
    if (path.split("/").includes("..")) return new Response("bad path", { status: 400 });
    if (path in overrides) return new Response(overrides[path]);
    try {
      return new Response(await Deno.readFile(`${ROOT}/${path}`));
    } catch {
      return new Response("not found", { status: 404 });
    }
  });
  const host = `127.0.0.1:${server.addr.port}`;
  return { base: `http://${host}/`, host, requests, close: () => server.shutdown() };
}

/**
 * The application: lists devices, opens a connection-manager listener (its library loads; on a
 * host without RDMA the event channel fails with ENODEV), then gets and releases a region through
 * a cache.
 */
export function hostApp(base: string): string {
  return `import {
  createRegistrarDouble, listDevices, listen, NativeLibraryError, RdmaError, RegistrationCache,
} from "${base}mod.ts";
const result: Record<string, unknown> = {};
try {
  try {
    result.devices = listDevices().map((d) => d.name);
  } catch (e) {
    if (!(e instanceof RdmaError)) throw e;
    result.devices = e.code;
  }
  try {
    listen({ port: 7471 }).close();
    result.cm = "listening";
  } catch (e) {
    if (!(e instanceof RdmaError)) throw e;
    result.cm = e.code;
  }
  const double = createRegistrarDouble();
  using cache = new RegistrationCache(double);
  cache.get(new Uint8Array(4096)).release();
  result.registrations = double.counters().registrations;
} catch (e) {
  result.error = e instanceof NativeLibraryError
    ? { name: e.name, reason: e.reason, flag: e.flag, message: e.message, tried: e.attempts.length }
    : { name: String((e as Error)?.name), message: String((e as Error)?.message ?? e) };
}
console.log(JSON.stringify(result));
`;
}

/** A fresh scratch folder with `app/main.ts`, `deno/` (DENO_DIR) and `cache/`. */
export function scratch(
  source: string,
): { dir: string; app: string; denoDir: string; cache: string } {
  const dir = Deno.makeTempDirSync({ prefix: "deno-rdma-importer-" });
  Deno.mkdirSync(`${dir}/app`);
  Deno.writeTextFileSync(`${dir}/app/main.ts`, source);
  return { dir, app: `${dir}/app`, denoDir: `${dir}/deno`, cache: `${dir}/cache` };
}

/** The flags the README documents for a first use that builds (a remote module). */
export function firstUseFlags(server: TreeServer, cache: string): string[] {
  return [
    `--allow-import=${server.host}`,
    "--allow-ffi",
    ENV_FLAG,
    `--allow-read=${cache}`,
    `--allow-write=${cache}`,
    `--allow-net=${server.host}`,
    "--allow-run=cc",
  ];
}

/** The flags the README documents for later runs. */
export function laterFlags(server: TreeServer, cache: string): string[] {
  return [`--allow-import=${server.host}`, "--allow-ffi", ENV_FLAG, `--allow-read=${cache}`];
}

/**
 * A run with a prebuilt library folder: the documented flags, and an environment with no cache
 * folder and no compiler, so nothing but `libDir` can provide the libraries.
 */
export function prebuilt(
  server: TreeServer,
  libDir: string,
  scratchDir: string,
): { flags: string[]; env: Record<string, string> } {
  return {
    flags: [`--allow-import=${server.host}`, "--allow-ffi", ENV_FLAG, `--allow-read=${libDir}`],
    env: {
      DENO_RDMA_LIB_DIR: libDir,
      DENO_RDMA_CACHE_DIR: `${scratchDir}/no-cache`,
      CC: "/nonexistent",
    },
  };
}

export interface AppRun {
  code: number;
  stdout: string;
  stderr: string;
  result: {
    devices?: string[] | string;
    registrations?: number;
    error?: { name: string; reason?: string; flag?: string; message: string; tried?: number };
  };
}

/** Runs `deno run <flags> main.ts` in the app folder (or `argv` as given, when set). */
export async function runApp(
  where: { app: string; denoDir: string },
  flags: string[],
  env: Record<string, string>,
  argv?: string[],
): Promise<AppRun> {
  const baseEnv: Record<string, string> = { DENO_DIR: where.denoDir, NO_COLOR: "1" };
  for (const name of ["PATH", "HOME"]) {
    const value = Deno.env.get(name);
    if (value !== undefined) baseEnv[name] = value;
  }
  const command = argv ?? [DENO, "run", ...flags, "main.ts"];
  const output = await new Deno.Command(command[0], {
    args: command.slice(1),
    cwd: where.app,
    env: { ...baseEnv, ...env },
    clearEnv: true,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stdout = new TextDecoder().decode(output.stdout);
  const stderr = new TextDecoder().decode(output.stderr);
  const last = stdout.trim().split("\n").at(-1) ?? "";
  let result: AppRun["result"] = {};
  try {
    result = JSON.parse(last);
  } catch {
    // Not the app's JSON: the caller asserts on code and stderr.
  }
  return { code: output.code, stdout, stderr, result };
}

/** How many times a run said it builds. */
export function builds(stderr: string): number {
  return stderr.split("\n").filter((l) => /^deno-rdma: building native libraries into /.test(l))
    .length;
}

/** The cache's entries (folders named by a key). */
export function entries(cache: string): string[] {
  try {
    return [...Deno.readDirSync(cache)].filter((e) =>
      e.isDirectory && /^[0-9a-f]{32}$/.test(e.name)
    )
      .map((e) => e.name).sort();
  } catch {
    return [];
  }
}
