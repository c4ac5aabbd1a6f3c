/**
 * material-agent-orchestrator: the materials of one PDF job, analysed and classified.
 *
 *     POST /functions/v1/material-agent-orchestrator
 *     {"job_id": "<the PDF job's UUID>", "text": "<text extracted from the PDF>"}
 *
 * Two model calls, both recorded in ailedger under the job's id: Llama 4 Scout on
 * Together AI lists the materials the text describes (`material_analysis`), then Claude
 * 3.5 Haiku puts the product in a catalog category (`material_classification`). The
 * answer is JSON: the materials, the category, and the ids of the two recorded calls.
 */

import type { TrackedCall } from "@ailedger/producer";
import { flushInBackground, logAnthropic, trackCall } from "../_shared/ai-logger.ts";

export const TOGETHER_MODEL = "meta-llama/Llama-4-Scout-17B-16E-Instruct";
export const ANTHROPIC_MODEL = "claude-3-5-haiku-20241022";
const TOGETHER_URL = "https://api.together.xyz/v1/chat/completions";
const ANTHROPIC_URL = "https://api.anthropic.com/v1/messages";

/** The catalog's categories; an answer outside them fails validation. */
export const CATEGORIES = ["flooring", "wall_covering", "countertop", "furniture", "textile", "other"];

export interface OrchestratorOptions {
  /** How the providers are reached; tests give recorded answers (default: the global fetch). */
  fetch?: typeof fetch;
  anthropicKey?: string;
  togetherKey?: string;
}

interface Material {
  name: string;
  [property: string]: unknown;
}

/** A provider answering anything but 2xx: the call is recorded as failed. */
class ProviderError extends Error {
  override name = "ProviderError";
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

function problem(status: number, error: string): Response {
  return Response.json({ error }, { status });
}

/** The first JSON object in a model's text, or undefined. */
function jsonIn(text: string): Record<string, unknown> | undefined {
  const start = text.indexOf("{");
  const end = text.lastIndexOf("}");
  if (start < 0 || end < start) return undefined;
  try {
    const value: unknown = JSON.parse(text.slice(start, end + 1));
    return value !== null && typeof value === "object" && !Array.isArray(value)
      ? (value as Record<string, unknown>)
      : undefined;
  } catch {
    return undefined;
  }
}

function score(value: unknown): number {
  return typeof value === "number" && value >= 0 && value <= 1 ? value : 0;
}

async function postJson(
  send: typeof fetch,
  url: string,
  headers: Record<string, string>,
  body: unknown,
  provider: string,
): Promise<unknown> {
  const response = await send(url, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: JSON.stringify(body),
  });
  const text = await response.text();
  if (!response.ok) throw new ProviderError(`${provider} answered ${response.status}: ${text.slice(0, 300)}`);
  return JSON.parse(text);
}

/** The function's handler; `Deno.serve(createOrchestrator())` is the deployed function. */
export function createOrchestrator(options: OrchestratorOptions = {}): (request: Request) => Promise<Response> {
  const send: typeof fetch = options.fetch ?? ((input, init) => fetch(input, init));
  const anthropicKey = options.anthropicKey ?? Deno.env.get("ANTHROPIC_API_KEY") ?? "";
  const togetherKey = options.togetherKey ?? Deno.env.get("TOGETHER_API_KEY") ?? "";

  async function analyse(jobId: string, text: string): Promise<{ materials: Material[]; eventId: string }> {
    const request = {
      model: TOGETHER_MODEL,
      max_tokens: 512,
      messages: [
        { role: "system", content: 'List the materials this product text describes as JSON: {"materials": [{"name", "finish", "color"}], "confidence": 0..1}.' },
        { role: "user", content: text },
      ],
    };
    let tracked: TrackedCall | undefined;
    const materials = await trackCall(
      "material_analysis",
      TOGETHER_MODEL,
      async (call) => {
        tracked = call;
        const response = await postJson(send, TOGETHER_URL, { authorization: `Bearer ${togetherKey}` }, request, "Together AI");
        const content = (response as { choices?: { message?: { content?: string } }[] }).choices?.[0]?.message?.content ?? "";
        const parsed = jsonIn(content);
        const found = Array.isArray(parsed?.materials) ? (parsed.materials as Material[]) : [];
        call.record({
          response,
          confidence_breakdown: { model_confidence: score(parsed?.confidence), completeness: found.length > 0 ? 1 : 0 },
        });
        return found;
      },
      { jobId, provider: "together", request_data: request },
    );
    return { materials, eventId: tracked?.eventId ?? "" };
  }

  async function classify(jobId: string, materials: Material[]): Promise<{ category: string; eventId: string }> {
    const request = {
      model: ANTHROPIC_MODEL,
      max_tokens: 256,
      system: `Classify the product into one of ${CATEGORIES.join(", ")}. Answer JSON: {"category", "confidence"}.`,
      messages: [{ role: "user", content: JSON.stringify({ materials }) }],
    };
    const started = performance.now();
    let response: unknown;
    try {
      response = await postJson(
        send,
        ANTHROPIC_URL,
        { "x-api-key": anthropicKey, "anthropic-version": "2023-06-01" },
        request,
        "Anthropic",
      );
    } catch (error) {
      const latencyMs = performance.now() - started;
      logAnthropic(undefined, { task: "material_classification", model: ANTHROPIC_MODEL, jobId, latencyMs, request, error });
      throw error;
    }
    const latencyMs = performance.now() - started;
    const text = ((response as { content?: { type?: string; text?: string }[] }).content ?? [])
      .filter((block) => block.type === "text")
      .map((block) => block.text ?? "")
      .join("");
    const parsed = jsonIn(text);
    const category = typeof parsed?.category === "string" ? parsed.category : "other";
    const eventId = logAnthropic(response, {
      task: "material_classification",
      jobId,
      latencyMs,
      request,
      confidence: {
        model_confidence: score(parsed?.confidence),
        validation: CATEGORIES.includes(category) ? 1 : 0,
      },
    });
    return { category, eventId };
  }

  return async (request: Request): Promise<Response> => {
    if (request.method !== "POST") return problem(405, "POST a JSON body: {\"job_id\": \"<uuid>\", \"text\": \"…\"}");
    let body: { job_id?: unknown; text?: unknown };
    try {
      body = (await request.json()) as { job_id?: unknown; text?: unknown };
    } catch {
      return problem(400, "the body is not JSON; send {\"job_id\": \"<uuid>\", \"text\": \"…\"}");
    }
    const jobId = body?.job_id;
    if (typeof jobId !== "string" || !UUID.test(jobId)) {
      return problem(400, "job_id must be the PDF job's UUID");
    }
    const text = typeof body.text === "string" ? body.text : "";
    try {
      const analysis = await analyse(jobId, text);
      const classification = await classify(jobId, analysis.materials);
      return Response.json({
        job_id: jobId,
        materials: analysis.materials,
        category: classification.category,
        calls: [analysis.eventId, classification.eventId],
      });
    } catch (error) {
      const message = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
      return problem(502, `a model call failed (${message}); it is recorded in ailedger under job ${jobId}`);
    } finally {
      await flushInBackground();
    }
  };
}

Deno.serve(createOrchestrator());
