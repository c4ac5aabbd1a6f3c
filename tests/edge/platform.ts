/**
 * What Supabase's runtime gives an edge function, for running one under plain Deno in the
 * tests: loaded with `deno run --preload`, before the function's own module.
 *
 * - `Deno.serve` listens on a free loopback port, written to `EDGE_PORT_FILE`.
 * - Provider APIs answer from recordings (`EDGE_RECORDINGS`, a folder holding
 *   `<host>.json`), or with `EDGE_FAIL_STATUS` for the hosts in `EDGE_FAIL_HOSTS`; every
 *   other non-loopback request fails, so nothing reaches the network.
 * - `EdgeRuntime.waitUntil` exists when `EDGE_RUNTIME=1`, as on Supabase.
 */

const env = (name: string): string => Deno.env.get(name) ?? "";
const realFetch = globalThis.fetch.bind(globalThis);
const failing = new Set(env("EDGE_FAIL_HOSTS").split(",").filter(Boolean));
const LOOPBACK = new Set(["127.0.0.1", "localhost", "[::1]"]);

globalThis.fetch = async (input: RequestInfo | URL, init?: RequestInit): Promise<Response> => {
  const url = new URL(input instanceof Request ? input.url : String(input));
  if (LOOPBACK.has(url.hostname)) return realFetch(input, init);
  if (failing.has(url.hostname)) {
    return Response.json({ type: "error", error: { type: "overloaded_error", message: "Overloaded" } }, {
      status: Number(env("EDGE_FAIL_STATUS") || "529"),
    });
  }
  try {
    const recorded = await Deno.readTextFile(`${env("EDGE_RECORDINGS")}/${url.hostname}.json`);
    return new Response(recorded, { status: 200, headers: { "content-type": "application/json" } });
  } catch {
    throw new TypeError(`the test platform has no recording for ${url.hostname}; it never reaches the network`);
  }
};

const realServe = Deno.serve.bind(Deno);
(Deno as unknown as { serve: unknown }).serve = (...args: unknown[]) => {
  const handler = args.find((arg) => typeof arg === "function") as Deno.ServeHandler;
  return realServe({
    hostname: "127.0.0.1",
    port: 0,
    onListen: ({ port }) => Deno.writeTextFileSync(env("EDGE_PORT_FILE"), String(port)),
  }, handler);
};

if (env("EDGE_RUNTIME") === "1") {
  const pending = new Set<Promise<unknown>>();
  (globalThis as { EdgeRuntime?: unknown }).EdgeRuntime = {
    waitUntil(promise: Promise<unknown>): void {
      pending.add(promise);
      promise.finally(() => pending.delete(promise));
    },
  };
}
