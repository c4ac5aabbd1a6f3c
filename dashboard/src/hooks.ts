// Loading an API answer for a view: refetched when its key changes, or every `refreshMs`.
import { useEffect, useRef, useState } from "preact/hooks";
import { ApiError } from "./api";

export interface Loaded<T> {
  data: T | null;
  error: ApiError | null;
  loading: boolean;
  updatedAt: Date | null;
}

export function useLoad<T>(
  key: string | null,
  load: () => Promise<T>,
  refreshMs = 0,
  onUnauthorized?: (error: ApiError) => void,
): Loaded<T> {
  const [state, setState] = useState<Loaded<T>>({
    data: null,
    error: null,
    loading: key !== null,
    updatedAt: null,
  });
  const loader = useRef(load);
  loader.current = load;
  useEffect(() => {
    if (key === null) return;
    let alive = true;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const run = async (): Promise<void> => {
      setState((s) => ({ ...s, loading: true }));
      try {
        const data = await loader.current();
        if (alive) setState({ data, error: null, loading: false, updatedAt: new Date() });
      } catch (error) {
        const failure = error instanceof ApiError ? error : new ApiError(0, String(error));
        if (alive) setState((s) => ({ ...s, error: failure, loading: false }));
        if (failure.status === 401) onUnauthorized?.(failure);
      }
      if (alive && refreshMs > 0) timer = setTimeout(run, refreshMs);
    };
    void run();
    return () => {
      alive = false;
      clearTimeout(timer);
    };
  }, [key, refreshMs]);
  return state;
}
