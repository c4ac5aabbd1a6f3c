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

/** 16 random bytes: Web Crypto where there is one, else Math.random (not for secrets). */
function randomBytes(): Uint8Array {
  const bytes = new Uint8Array(16);
  const webCrypto = (globalThis as { crypto?: Crypto }).crypto;
  if (webCrypto && typeof webCrypto.getRandomValues === "function") {
    webCrypto.getRandomValues(bytes);
  } else {
    for (let i = 0; i < 16; i++) bytes[i] = Math.floor(Math.random() * 256);
  }
  return bytes;
}

const COUNTER_SPAN = 2 ** 48;
let idPrefix = "";
let idCounter = 0;

/**
 * An event id, laid out as the Python producer's (producer/ids.py): a prefix of 74 random
 * bits drawn once per isolate or process, then a 48-bit counter that starts at a random
 * value, as an RFC 9562 version-8 UUID. Ids need to be unique, not unguessable, and one
 * logger's ids are consecutive, so the table's primary key receives them in order instead
 * of at random pages. Drawn on first use: Workers give no random values at module scope.
 */
export function newEventId(): string {
  if (!idPrefix) {
    const b = randomBytes();
    const hex = (from: number, to: number) =>
      Array.from(b.subarray(from, to), (x) => x.toString(16).padStart(2, "0")).join("");
    const c = ((b[6]! & 0x0f) << 8) | b[7]!; // 12 bits after the version digit
    const d = 0x8000 | ((b[8]! & 0x3f) << 8) | b[9]!; // the RFC 4122 variant, then 14 bits
    idPrefix = `${hex(0, 4)}-${hex(4, 6)}-8${c.toString(16).padStart(3, "0")}-${d.toString(16)}-`;
    // Started in the lower half: 2^47 ids at least before the counter wraps.
    idCounter = Math.floor(parseInt(hex(10, 16), 16) / 2);
  }
  const n = idCounter++ % COUNTER_SPAN;
  return idPrefix + n.toString(16).padStart(12, "0");
}

/** The process' synchronous builtin-module loader (Node >= 20.16), if there is one. */
export function builtinModule(id: string): unknown {
  try {
    return scope.process?.getBuiltinModule?.(id);
  } catch {
    return undefined;
  }
}
