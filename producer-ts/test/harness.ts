/**
 * One way to declare tests on both runtimes: Deno.test under Deno, node:test under Node,
 * with the few asserts the tests need (no std library, nothing fetched at run time).
 */

interface DenoTestApi {
  test(definition: { name: string; fn: () => Promise<void> | void; sanitizeOps?: boolean; sanitizeResources?: boolean }): void;
  readTextFile(path: string | URL): Promise<string>;
  serve: unknown;
}

export const deno = (globalThis as unknown as { Deno?: DenoTestApi }).Deno;
export const runtime = deno !== undefined ? "deno" : "node";

type TestFn = () => Promise<void> | void;

const nodeTest: ((name: string, fn: TestFn) => void) | undefined =
  deno === undefined ? ((await import("node:test")).test as unknown as (name: string, fn: TestFn) => void) : undefined;

export function test(name: string, fn: TestFn): void {
  if (deno !== undefined) deno.test({ name, fn });
  else nodeTest!(name, fn);
}

export class AssertionError extends Error {
  override name = "AssertionError";
}

function show(value: unknown): string {
  try {
    return JSON.stringify(value, (_k, v) => (typeof v === "bigint" ? `${v}n` : v));
  } catch {
    return String(value);
  }
}

export function ok(value: unknown, message = "expected a truthy value"): asserts value {
  if (!value) throw new AssertionError(message);
}

export function equal<T>(actual: T, expected: T, message = ""): void {
  if (!Object.is(actual, expected)) {
    throw new AssertionError(`${message ? `${message}: ` : ""}expected ${show(expected)}, got ${show(actual)}`);
  }
}

function same(a: unknown, b: unknown): boolean {
  if (Object.is(a, b)) return true;
  if (typeof a !== "object" || typeof b !== "object" || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  const ka = Object.keys(a).sort();
  const kb = Object.keys(b).sort();
  if (ka.length !== kb.length || ka.some((k, i) => k !== kb[i])) return false;
  return ka.every((k) => same((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]));
}

export function deepEqual(actual: unknown, expected: unknown, message = ""): void {
  if (!same(actual, expected)) {
    throw new AssertionError(`${message ? `${message}: ` : ""}expected ${show(expected)}, got ${show(actual)}`);
  }
}

export async function rejects(promise: Promise<unknown>, check: (error: unknown) => boolean, message = ""): Promise<void> {
  try {
    await promise;
  } catch (error) {
    if (!check(error)) throw new AssertionError(`${message}: unexpected error ${String(error)}`);
    return;
  }
  throw new AssertionError(`${message}: expected a rejection`);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Wait for `condition` with a deadline: no sleep-and-hope. */
export async function waitFor(condition: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new AssertionError(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(10);
  }
}

/** A file of the repository's `contract/` folder (found from this file upwards). */
export async function readContract(name: string): Promise<unknown> {
  let dir = new URL(".", import.meta.url);
  for (let level = 0; level < 6; level++) {
    const candidate = new URL(`contract/${name}`, dir);
    try {
      const text =
        deno !== undefined
          ? await deno.readTextFile(candidate)
          : await (await import("node:fs/promises")).readFile(candidate, "utf8");
      return JSON.parse(text);
    } catch (error) {
      if (error instanceof SyntaxError) throw error;
      dir = new URL("..", dir);
    }
  }
  throw new Error(`contract/${name} not found above ${import.meta.url}`);
}
