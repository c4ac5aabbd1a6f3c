/**
 * The processing job the current code runs for (e.g. a PDF upload), set once per job.
 *
 * Uses AsyncLocalStorage where the runtime has it (Node, Bun, Deno, Workers with
 * nodejs_compat), so every call logged inside `withJob(id, fn)`, however deep in awaits,
 * belongs to that job. Where it is missing, the scope covers only the synchronous part
 * of `fn`: pass `jobId` explicitly to `log()` / `track()` there.
 */

import { builtinModule } from "./runtime.ts";

interface JobStorage {
  getStore(): string | undefined;
  run<R>(store: string | undefined, fn: () => R): R;
}

type StorageClass = new () => JobStorage;

function storageClass(module: unknown): StorageClass | undefined {
  const ctor = (module as { AsyncLocalStorage?: unknown } | undefined)?.AsyncLocalStorage;
  return typeof ctor === "function" ? (ctor as StorageClass) : undefined;
}

async function loadStorage(): Promise<JobStorage | undefined> {
  let ctor = storageClass(builtinModule("node:async_hooks"));
  if (ctor === undefined) {
    try {
      // A computed specifier: bundlers for runtimes without it leave the import alone
      // instead of failing the build, and it simply fails here at run time.
      const specifier = ["node", "async_hooks"].join(":");
      ctor = storageClass(await import(/* @vite-ignore */ specifier));
    } catch {
      ctor = undefined;
    }
  }
  return ctor === undefined ? undefined : new ctor();
}

const storage: JobStorage | undefined = await loadStorage();

/** Whether `withJob` follows a job across awaits in this runtime. */
export const hasAsyncContext = storage !== undefined;

let syncJob: string | undefined;

/** The job id set by an enclosing `withJob`, if any. */
export function currentJobId(): string | undefined {
  return storage !== undefined ? storage.getStore() : syncJob;
}

/** Run `fn` with every call logged inside it attributed to `jobId`; returns what `fn` returns. */
export function withJob<R>(jobId: string | null | undefined, fn: () => R): R {
  const value = jobId === null || jobId === undefined ? undefined : String(jobId);
  if (storage !== undefined) return storage.run(value, fn);
  const previous = syncJob;
  syncJob = value;
  try {
    return fn();
  } finally {
    syncJob = previous;
  }
}
