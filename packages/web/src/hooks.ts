/** Data loading for pages: fetch on mount and on change, optional polling while the tab is visible. */
import { useCallback, useEffect, useRef, useState } from 'react';
import { ApiError } from './api';

export interface Loaded<T> {
  readonly data: T | undefined;
  readonly error: ApiError | undefined;
  readonly loading: boolean;
  /** When the data was last loaded (ms). */
  readonly loadedAt: number | undefined;
  reload(): void;
}

function asApiError(err: unknown): ApiError {
  if (err instanceof ApiError) return err;
  return new ApiError(0, 'client_error', err instanceof Error ? err.message : String(err));
}

/**
 * Runs `load` when `key` changes (null: don't load) and, with `refreshMs`,
 * again every refreshMs while the page is visible. Old data stays on screen
 * while a refresh runs, so polling never flickers.
 */
export function useLoad<T>(key: string | null, load: (signal: AbortSignal) => Promise<T>, refreshMs?: number): Loaded<T> {
  const [state, setState] = useState<{ key: string | null; data?: T; error?: ApiError; loading: boolean; loadedAt?: number }>({ key, loading: key !== null });
  const [tick, setTick] = useState(0);
  const loadRef = useRef(load);
  loadRef.current = load;

  useEffect(() => {
    if (key === null) return undefined;
    const ac = new AbortController();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const run = async () => {
      setState((s) => (s.key === key ? { ...s, loading: true } : { key, loading: true }));
      try {
        const data = await loadRef.current(ac.signal);
        if (!ac.signal.aborted) setState({ key, data, loading: false, loadedAt: Date.now() });
      } catch (err) {
        if (!ac.signal.aborted) setState((s) => ({ ...s, key, error: asApiError(err), loading: false }));
      }
      if (refreshMs !== undefined && !ac.signal.aborted) timer = setTimeout(poll, refreshMs);
    };
    const poll = () => {
      if (document.hidden) timer = setTimeout(poll, refreshMs);
      else void run();
    };
    void run();
    return () => {
      ac.abort();
      if (timer !== undefined) clearTimeout(timer);
    };
  }, [key, refreshMs, tick]);

  const reload = useCallback(() => setTick((t) => t + 1), []);
  const current = state.key === key;
  return {
    data: current ? state.data : undefined,
    error: current ? state.error : undefined,
    loading: key !== null && (!current || state.loading),
    loadedAt: current ? state.loadedAt : undefined,
    reload,
  };
}

/** A mutation with its busy flag, error and last result. */
export function useAction<A extends unknown[], R>(fn: (...args: A) => Promise<R>) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<ApiError | undefined>();
  const [result, setResult] = useState<R | undefined>();
  const fnRef = useRef(fn);
  fnRef.current = fn;
  const run = useCallback(async (...args: A): Promise<R | undefined> => {
    setBusy(true);
    setError(undefined);
    try {
      const r = await fnRef.current(...args);
      setResult(() => r);
      return r;
    } catch (err) {
      setError(asApiError(err));
      return undefined;
    } finally {
      setBusy(false);
    }
  }, []);
  const reset = useCallback(() => {
    setError(undefined);
    setResult(undefined);
  }, []);
  return { run, busy, error, result, reset };
}

/** The current time, refreshed every `ms`, for "3 minutes ago". */
export function useNow(ms = 15_000): number {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    const t = setInterval(() => setNow(Date.now()), ms);
    return () => clearInterval(t);
  }, [ms]);
  return now;
}

/** A value that follows `value` after `ms` of quiet (search boxes). */
export function useDebounced<T>(value: T, ms = 250): T {
  const [v, setV] = useState(value);
  useEffect(() => {
    const t = setTimeout(() => setV(value), ms);
    return () => clearTimeout(t);
  }, [value, ms]);
  return v;
}
