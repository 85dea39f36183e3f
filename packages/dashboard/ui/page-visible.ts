import { useEffect, useState } from 'preact/hooks';

/** Whether the page is visible: polling pauses while the tab is hidden. */
export function usePageVisible(): boolean {
  const [visible, setVisible] = useState(() => document.visibilityState === 'visible');
  useEffect(() => {
    const update = () => setVisible(document.visibilityState === 'visible');
    document.addEventListener('visibilitychange', update);
    return () => document.removeEventListener('visibilitychange', update);
  }, []);
  return visible;
}

/** Calls `tick` now and every `ms` while `active`; a change of `deps` starts over. */
export function usePolling(
  tick: (signal: AbortSignal) => Promise<void> | void,
  ms: number,
  active: boolean,
  deps: readonly unknown[],
): void {
  useEffect(() => {
    if (!active) return;
    const controller = new AbortController();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const run = async () => {
      try {
        await tick(controller.signal);
      } finally {
        if (!controller.signal.aborted) timer = setTimeout(run, ms);
      }
    };
    void run();
    return () => {
      controller.abort();
      if (timer !== undefined) clearTimeout(timer);
    };
    // The caller names what restarts the polling (`deps`); `tick` is read when it runs.
  }, [active, ms, ...deps]);
}
