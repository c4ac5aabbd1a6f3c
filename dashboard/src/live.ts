// A job's calls as they are stored: server-sent events read with fetch() (EventSource cannot
// send the Authorization header), and polling with ETag/If-None-Match when streaming fails.
import { type Api, ApiError, type JobCosts } from "./api";

export interface LiveHandlers {
  onCalls: (answer: JobCosts) => void;
  onState: (state: "live" | "polling" | "error", detail?: string) => void;
}

const POLL_MS = 1000;

export function followJob(api: Api, jobId: string, handlers: LiveHandlers): () => void {
  const abort = new AbortController();
  let received = 0;
  let stopped = false;

  const deliver = (answer: JobCosts): void => {
    received = answer.offset + answer.calls.length;
    handlers.onCalls(answer);
  };

  const stream = async (): Promise<boolean> => {
    const response = await api.request(
      `/api/jobs/${encodeURIComponent(jobId)}/events`,
      { offset: String(received) },
      { signal: abort.signal, headers: { Accept: "text/event-stream" } },
    );
    if (!response.body) return false;
    handlers.onState("live");
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return true; // the server ended the stream: reconnect from `received`
      buffer += value;
      let end: number;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const data = block
          .split("\n")
          .filter((line) => line.startsWith("data:"))
          .map((line) => line.slice(5).trimStart())
          .join("\n");
        if (/^event: calls$/m.test(block) && data) deliver(JSON.parse(data) as JobCosts);
      }
    }
  };

  const poll = async (): Promise<void> => {
    handlers.onState("polling");
    let etag: string | null = null;
    while (!stopped) {
      const headers: Record<string, string> = etag ? { "If-None-Match": etag } : {};
      const response = await api.request(
        `/api/jobs/${encodeURIComponent(jobId)}/calls`,
        { offset: String(received) },
        { signal: abort.signal, headers },
      );
      if (response.status !== 304) {
        // Unchanged while no call arrives; once one does, the next offset's answer differs.
        etag = response.headers.get("ETag");
        const answer = (await response.json()) as JobCosts;
        deliver(answer);
        if (answer.has_more) continue;
      }
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    }
  };

  void (async () => {
    let failures = 0;
    while (!stopped) {
      try {
        if (await stream()) {
          failures = 0;
          continue;
        }
      } catch (error) {
        if (stopped) return;
        if (error instanceof ApiError && error.status === 401) {
          handlers.onState("error", error.message);
          return;
        }
        failures += 1;
      }
      if (failures >= 2 || failures === 0) break; // streaming does not work here: poll
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
    if (stopped) return;
    try {
      await poll();
    } catch (error) {
      if (!stopped) handlers.onState("error", String((error as Error).message ?? error));
    }
  })();

  return () => {
    stopped = true;
    abort.abort();
  };
}
