// The one way the dashboard talks to the API: fetch() with the bearer token in a header.
import type { components } from "./api-types";

export type Schemas = components["schemas"];
export type AIMetrics = Schemas["AIMetrics"];
export type JobCosts = Schemas["JobCosts"];
export type JobCall = Schemas["JobCall"];
export type ImageCosts = Schemas["ImageCosts"];
export type JobList = Schemas["JobList"];
export type JobsSummary = Schemas["JobsSummary"];
export type ConfidenceReport = Schemas["ConfidenceReport"];
export type TaskConfidence = Schemas["TaskConfidence"];
export type BudgetState = Schemas["BudgetState"];
export type Alerts = Schemas["Alerts"];

const TOKEN_KEY = "ailedger.token";

export function storedToken(): string | null {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function storeToken(token: string | null): void {
  if (token === null) sessionStorage.removeItem(TOKEN_KEY);
  else sessionStorage.setItem(TOKEN_KEY, token);
}

/** The API refused or failed; `status` 0 when it could not be reached. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export type Query = Record<string, string | string[] | undefined | null>;

export class Api {
  constructor(
    readonly base: string,
    readonly token: string,
  ) {}

  url(path: string, query: Query = {}): string {
    const params = new URLSearchParams();
    for (const [key, value] of Object.entries(query)) {
      if (value === undefined || value === null || value === "") continue;
      for (const v of Array.isArray(value) ? value : [value]) params.append(key, v);
    }
    const qs = params.toString();
    return `${this.base.replace(/\/$/, "")}${path}${qs ? `?${qs}` : ""}`;
  }

  headers(extra: Record<string, string> = {}): Record<string, string> {
    return { Authorization: `Bearer ${this.token}`, ...extra };
  }

  async request(
    path: string,
    query: Query = {},
    init: RequestInit & { headers?: Record<string, string> } = {},
  ): Promise<Response> {
    let response: Response;
    try {
      response = await fetch(this.url(path, query), {
        ...init,
        headers: this.headers(init.headers),
        credentials: "omit",
      });
    } catch (error) {
      throw new ApiError(0, `the API cannot be reached (${String(error)}): is \`ailedger serve\` running?`);
    }
    if (!response.ok && response.status !== 304) {
      throw new ApiError(response.status, await detail(response));
    }
    return response;
  }

  async get<T>(path: string, query: Query = {}): Promise<T> {
    return (await (await this.request(path, query)).json()) as T;
  }
}

async function detail(response: Response): Promise<string> {
  try {
    const body = (await response.json()) as { detail?: unknown };
    if (typeof body.detail === "string") return body.detail;
    if (Array.isArray(body.detail)) {
      return body.detail
        .map((d: { loc?: unknown[]; msg?: string }) => `${(d.loc ?? []).join(".")}: ${d.msg ?? ""}`)
        .join("; ");
    }
  } catch {
    // not JSON: fall through to the status line
  }
  return `${response.status} ${response.statusText}`;
}
