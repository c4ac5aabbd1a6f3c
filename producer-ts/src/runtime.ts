/**
 * What differs between Deno, Node, Bun and Workers, reached through globalThis only,
 * so that the core never imports a runtime's own modules.
 */

interface DenoLike {
  env?: { get(name: string): string | undefined };
  unrefTimer?(id: number): void;
}

interface ProcessLike {
  env?: Record<string, string | undefined>;
  versions?: { node?: string };
  once?(event: string, listener: () => void): unknown;
  getBuiltinModule?(id: string): unknown;
}

const scope = globalThis as unknown as { Deno?: DenoLike; process?: ProcessLike };

/** An environment variable where the runtime has an environment; undefined elsewhere. */
export function readEnv(name: string): string | undefined {
  try {
    const deno = scope.Deno;
    if (deno?.env) return deno.env.get(name) ?? undefined;
  } catch {
    // Deno without --allow-env throws: same as unset.
  }
  try {
    return scope.process?.env?.[name];
  } catch {
    return undefined;
  }
}

export type TimerHandle = ReturnType<typeof setTimeout>;

/** setTimeout that does not keep a Node or Deno process alive on its own. */
export function backgroundTimer(callback: () => void, delayMs: number): TimerHandle {
  const handle = setTimeout(callback, Math.max(0, delayMs));
  const nodeTimer = handle as unknown as { unref?: () => void };
  if (typeof nodeTimer.unref === "function") {
    nodeTimer.unref();
  } else if (typeof handle === "number" && scope.Deno?.unrefTimer) {
    scope.Deno.unrefTimer(handle);
  }
  return handle;
}

/** Run `listener` once when a Node or Bun process is about to exit with nothing left to do. */
export function onProcessIdle(listener: () => void): boolean {
  const proc = scope.process;
  if (scope.Deno !== undefined || !proc?.versions?.node || typeof proc.once !== "function") {
    return false;
  }
  proc.once("beforeExit", listener);
  return true;
}

/** A random (version 4) UUID. */
export function newEventId(): string {
  const webCrypto = (globalThis as { crypto?: Crypto }).crypto;
  if (webCrypto && typeof webCrypto.randomUUID === "function") return webCrypto.randomUUID();
  const bytes = new Uint8Array(16);
  if (webCrypto && typeof webCrypto.getRandomValues === "function") {
    webCrypto.getRandomValues(bytes);
  } else {
    for (let i = 0; i < 16; i++) bytes[i] = Math.floor(Math.random() * 256);
  }
  bytes[6] = (bytes[6]! & 0x0f) | 0x40;
  bytes[8] = (bytes[8]! & 0x3f) | 0x80;
  const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** The process' synchronous builtin-module loader (Node >= 20.16), if there is one. */
export function builtinModule(id: string): unknown {
  try {
    return scope.process?.getBuiltinModule?.(id);
  } catch {
    return undefined;
  }
}
