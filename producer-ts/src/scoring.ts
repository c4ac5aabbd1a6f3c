/**
 * Confidence scoring: the same pure functions as the Python producer's `producer/scoring.py`,
 * so that a service can decide in the request path what the worker will record.
 */

import { FALLBACK_TO_RULES, USE_AI_RESULT, type Action } from "./constants.ts";
import {
  add,
  compare,
  decimalFromNumber,
  divideRounded,
  formatDecimal,
  multiply,
  parseDecimal,
  ZERO,
  type Dec,
} from "./decimal.ts";

export { FALLBACK_TO_RULES, USE_AI_RESULT, type Action } from "./constants.ts";

/** A weight or threshold: a number, or decimal text for an exact value ("0.70"). */
export type DecimalLike = number | string;

export const DEFAULT_WEIGHTS: Readonly<Record<string, DecimalLike>> = Object.freeze({
  model_confidence: "0.4",
  completeness: "0.2",
  consistency: "0.2",
  validation: "0.2",
});

export const DEFAULT_THRESHOLD = "0.70";

const ONE: Dec = { units: 1n, scale: 0 };

function asDecimal(value: unknown): Dec | null {
  if (typeof value === "number") return decimalFromNumber(value);
  if (typeof value === "string") return parseDecimal(value);
  if (typeof value === "bigint") return { units: value, scale: 0 };
  return null;
}

function asScore(value: unknown): Dec | null {
  const number = asDecimal(value);
  if (number === null || compare(number, ZERO) < 0 || compare(number, ONE) > 0) return null;
  return number;
}

function scoreOf(breakdown: unknown, weights?: Readonly<Record<string, DecimalLike>>): Dec | null {
  if (breakdown === null || typeof breakdown !== "object") return null;
  const components = breakdown as Record<string, unknown>;
  let total = ZERO;
  let weightSum = ZERO;
  for (const [name, rawWeight] of Object.entries(weights ?? DEFAULT_WEIGHTS)) {
    if (!Object.prototype.hasOwnProperty.call(components, name)) continue;
    const weight = asDecimal(rawWeight);
    if (weight === null || compare(weight, ZERO) <= 0) continue;
    const value = asScore(components[name]);
    if (value === null) continue;
    total = add(total, multiply(value, weight));
    weightSum = add(weightSum, weight);
  }
  if (weightSum.units === 0n) return null;
  return divideRounded(total, weightSum, 2);
}

/**
 * Weighted mean of the breakdown's known components, rounded half up to 2 decimals.
 *
 * Components without a weight, or whose value is not a number in [0, 1], are left out;
 * the weights of the components present are renormalised. Null when no weighted
 * component is present. Arithmetic is exact decimal, as in Python: 0.705 rounds to 0.71.
 */
export function confidenceScore(
  breakdown: Readonly<Record<string, unknown>> | null | undefined,
  weights?: Readonly<Record<string, DecimalLike>>,
): number | null {
  const score = scoreOf(breakdown, weights);
  return score === null ? null : Number(formatDecimal(score));
}

/** The same score as decimal text with two places ("0.70"), or null. */
export function confidenceScoreText(
  breakdown: Readonly<Record<string, unknown>> | null | undefined,
  weights?: Readonly<Record<string, DecimalLike>>,
): string | null {
  const score = scoreOf(breakdown, weights);
  return score === null ? null : formatDecimal(score);
}

export interface Decision {
  action: Action;
  fallbackReason: string | null;
}

export interface DecideOptions {
  /** An error the call ended with: always means falling back to rules. */
  error?: string | Error | null;
  /** Scores below this fall back to rules; default 0.70. */
  threshold?: DecimalLike;
}

/** Decimal text with at least two places, as Python prints a score's Decimal. */
function display(value: DecimalLike, parsed: Dec): string {
  if (typeof value === "string") return value.trim();
  return formatDecimal(parsed.scale >= 2 ? parsed : { units: parsed.units * 10n ** BigInt(2 - parsed.scale), scale: 2 });
}

/**
 * What a service should do with an AI result: `{ action, fallbackReason }`.
 *
 * An error, or a score below the threshold, means falling back to rules; no score at
 * all (nothing to judge by) keeps the AI result.
 */
export function decideAction(score: number | string | null | undefined, options: DecideOptions = {}): Decision {
  const { error } = options;
  if (error) {
    const text = typeof error === "string" ? error : `${error.name}: ${error.message}`;
    return { action: FALLBACK_TO_RULES, fallbackReason: `error: ${text.slice(0, 200)}` };
  }
  const thresholdValue = options.threshold ?? DEFAULT_THRESHOLD;
  const threshold = asDecimal(thresholdValue);
  const value = score === null || score === undefined ? null : asDecimal(score);
  if (value !== null && threshold !== null && compare(value, threshold) < 0) {
    return {
      action: FALLBACK_TO_RULES,
      fallbackReason: `confidence ${display(score as DecimalLike, value)} below threshold ${display(thresholdValue, threshold)}`,
    };
  }
  return { action: USE_AI_RESULT, fallbackReason: null };
}
