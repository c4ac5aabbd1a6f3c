// A Cloudflare Worker using the built package, run in workerd by test-workers/run.test.mjs.
import { AICallLogger } from "../dist/index.js";

export default {
  async fetch(request, env, ctx) {
    const bodies = [];
    const logger = new AICallLogger({
      endpoint: "https://ingest.example",
      token: "t",
      // The ingest contract, answered in the isolate: 202 with the accepted ids.
      fetch: async (url, init) => {
        let text = init.body;
        if (init.headers["Content-Encoding"] === "gzip" || init.headers["content-encoding"] === "gzip") {
          const stream = new Blob([init.body]).stream().pipeThrough(new DecompressionStream("gzip"));
          text = await new Response(stream).text();
        }
        const events = JSON.parse(text);
        bodies.push({ url: String(url), gzip: text !== init.body, events });
        return new Response(JSON.stringify({ accepted: events.map((e) => e.id), rejected: [] }), { status: 202 });
      },
    });
    const ids = [
      logger.log({ task: "enrich", model: "gpt-4o-mini", input_tokens: 3, jobId: "5b0e8f36-9c1f-4e43-9a6e-0f5d2b8b7f10",
        request_data: { api_key: "sk-abcdefghijklmnopqrstuvwx", prompt: "x".repeat(2000) } }),
      logger.log({ task: "classify", model: "claude-3-5-haiku-20241022", latency_ms: 120 }),
    ];
    ctx.waitUntil(logger.flush(2000));  // as an edge function would
    const sent = await logger.flush(2000);
    return Response.json({ ids, sent, stats: logger.stats, bodies });
  },
};
