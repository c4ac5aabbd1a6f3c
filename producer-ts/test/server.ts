/** A local HTTP server from a web-standard handler: Deno.serve under Deno, node:http under Node. */

import { deno } from "./harness.ts";

export type Handler = (request: Request) => Promise<Response> | Response;

export interface LocalServer {
  readonly port: number;
  readonly url: string;
  close(): Promise<void>;
}

interface DenoServe {
  serve(
    options: { port: number; hostname: string; onListen?: (addr: { port: number }) => void },
    handler: Handler,
  ): { finished: Promise<void>; shutdown(): Promise<void>; addr: { port: number } };
}

export async function serve(handler: Handler, port = 0): Promise<LocalServer> {
  if (deno !== undefined) {
    const server = (deno as unknown as DenoServe).serve({ port, hostname: "127.0.0.1", onListen: () => {} }, handler);
    const bound = server.addr.port;
    return {
      port: bound,
      url: `http://127.0.0.1:${bound}`,
      close: async () => {
        await server.shutdown();
        await server.finished;
      },
    };
  }
  const http = await import("node:http");
  const server = http.createServer(async (req, res) => {
    try {
      const chunks: Buffer[] = [];
      for await (const chunk of req) chunks.push(chunk as Buffer);
      const headers = new Headers();
      for (const [name, value] of Object.entries(req.headers)) {
        if (typeof value === "string") headers.set(name, value);
      }
      const method = req.method ?? "GET";
      const request = new Request(`http://127.0.0.1${req.url ?? "/"}`, {
        method,
        headers,
        ...(method === "GET" || method === "HEAD" ? {} : { body: Buffer.concat(chunks) }),
      });
      const response = await handler(request);
      const body = Buffer.from(await response.arrayBuffer());
      const out: Record<string, string> = {};
      response.headers.forEach((value, name) => {
        out[name] = value;
      });
      res.writeHead(response.status, out);
      res.end(body);
    } catch (error) {
      res.writeHead(500);
      res.end(String(error));
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, "127.0.0.1", () => resolve());
  });
  const address = server.address();
  const bound = typeof address === "object" && address !== null ? address.port : port;
  return {
    port: bound,
    url: `http://127.0.0.1:${bound}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
