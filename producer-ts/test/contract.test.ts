/** The shared contract tables (contract/*.json), read by both producers' tests. */

import { confidenceScore, confidenceScoreText, decideAction, usageFromResponse } from "../src/index.ts";
import { deepEqual, equal, ok, readContract, test } from "./harness.ts";

interface ScoringCase {
  name: string;
  breakdown: Record<string, unknown> | null;
  weights?: Record<string, string>;
  threshold?: string;
  error?: string;
  score: string | null;
  action: string;
  fallback_reason: string | null;
}

interface UsageCase {
  name: string;
  response: unknown;
  expected: Record<string, unknown>;
}

const scoring = (await readContract("scoring-cases.json")) as { cases: ScoringCase[]; default_threshold: string };
const usage = (await readContract("usage-cases.json")) as { cases: UsageCase[] };

test("scoring-cases.json: scores and actions, case by case", () => {
  ok(scoring.cases.length >= 30);
  const failures: string[] = [];
  for (const c of scoring.cases) {
    const text = confidenceScoreText(c.breakdown, c.weights);
    const number = confidenceScore(c.breakdown, c.weights);
    const decision = decideAction(text, {
      threshold: c.threshold ?? scoring.default_threshold,
      ...(c.error !== undefined && { error: c.error }),
    });
    const got = { score: text, number, action: decision.action, fallback_reason: decision.fallbackReason };
    const want = {
      score: c.score,
      number: c.score === null ? null : Number(c.score),
      action: c.action,
      fallback_reason: c.fallback_reason,
    };
    if (JSON.stringify(got) !== JSON.stringify(want)) failures.push(`${c.name}: want ${JSON.stringify(want)}, got ${JSON.stringify(got)}`);
  }
  equal(failures.join("\n"), "");
});

test("decideAction takes the score as a number too", () => {
  const score = confidenceScore({ model_confidence: 0.6 });
  deepEqual(decideAction(score), { action: "fallback_to_rules", fallbackReason: "confidence 0.60 below threshold 0.70" });
  deepEqual(decideAction(0.7), { action: "use_ai_result", fallbackReason: null });
  deepEqual(decideAction(null, { error: new TypeError("bad input") }), {
    action: "fallback_to_rules",
    fallbackReason: "error: TypeError: bad input",
  });
});

test("usage-cases.json: usage read from provider responses, case by case", () => {
  ok(usage.cases.length >= 10);
  const failures: string[] = [];
  for (const c of usage.cases) {
    const got = usageFromResponse(c.response);
    if (JSON.stringify(Object.entries(got).sort()) !== JSON.stringify(Object.entries(c.expected).sort())) {
      failures.push(`${c.name}: want ${JSON.stringify(c.expected)}, got ${JSON.stringify(got)}`);
    }
  }
  equal(failures.join("\n"), "");
});

test("usage from an SDK object whose fields are getters (class instances)", () => {
  class Usage {
    get input_tokens() {
      return 10;
    }
    get output_tokens() {
      return 2;
    }
  }
  class Message {
    type = "message";
    model = "claude-3-5-haiku-20241022";
    usage = new Usage();
  }
  deepEqual(usageFromResponse(new Message()), {
    model: "claude-3-5-haiku-20241022",
    provider: "anthropic",
    input_tokens: 10,
    output_tokens: 2,
  });
  const broken = {
    object: "chat.completion",
    model: "gpt-4o",
    get usage(): unknown {
      throw new Error("lazy field failed");
    },
  };
  deepEqual(usageFromResponse(broken), { model: "gpt-4o", provider: "openai" });
});
